/// A `MaLoi` result code of PROTOCOL.md with its HTTP status and its `MoTaLoi` text.
public enum ResultCode: String, Sendable, CaseIterable, Codable {
    case success = "00"
    case notFound = "01"
    case alreadyConfirmed = "02"
    case malformed = "03"
    case amountMismatch = "04"
    case suspectedFraud = "07"
    case expired = "11"
    case cancelled = "24"
    case insufficientFunds = "51"
    case transactionNotFound = "91"
    case conflictingDuplicate = "94"
    case originalNotSuccessful = "95"
    case invalidSignature = "97"
    case otherError = "99"

    /// The HTTP status of a reply carrying this code (callback-only codes never appear in replies).
    public var httpStatus: Int {
        switch self {
        case .success, .alreadyConfirmed: 200
        case .notFound, .transactionNotFound: 404
        case .malformed: 400
        case .amountMismatch, .originalNotSuccessful: 422
        case .conflictingDuplicate: 409
        case .invalidSignature: 401
        case .otherError: 500
        case .suspectedFraud, .expired, .cancelled, .insufficientFunds: 200
        }
    }

    /// Whether a reply with this code is final, so a request repeating its `webhook-id` gets the
    /// same answer again instead of being processed afresh.
    public var isFinalAnswer: Bool {
        switch self {
        case .success, .alreadyConfirmed, .malformed, .amountMismatch, .conflictingDuplicate, .originalNotSuccessful: true
        case .notFound, .transactionNotFound, .invalidSignature, .otherError: false
        case .suspectedFraud, .expired, .cancelled, .insufficientFunds: false
        }
    }

    /// `MoTaLoi`: the portal's short description, in unaccented Vietnamese.
    public var message: String {
        switch self {
        case .success: "Thanh cong"
        case .notFound: "Khong tim thay don hang"
        case .alreadyConfirmed: "Giao dich da duoc xac nhan truoc do"
        case .malformed: "Du lieu khong hop le"
        case .amountMismatch: "So tien khong hop le"
        case .suspectedFraud: "Giao dich bi nghi ngo gian lan"
        case .expired: "Giao dich het han thanh toan"
        case .cancelled: "Khach hang huy giao dich"
        case .insufficientFunds: "Tai khoan khong du so du"
        case .transactionNotFound: "Khong tim thay giao dich"
        case .conflictingDuplicate: "Yeu cau trung lap voi noi dung khac"
        case .originalNotSuccessful: "Giao dich goc khong thanh cong"
        case .invalidSignature: "Chu ky khong hop le"
        case .otherError: "Loi he thong"
        }
    }
}

/// A protocol-level refusal: the code to answer with and, for `03` and `04`, which field was at
/// fault (appended to `MoTaLoi` so a client developer can act on it).
struct ProtocolRejection: Error, Sendable, Equatable {
    var code: ResultCode
    var detail: String?

    init(_ code: ResultCode, _ detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    static func malformed(_ detail: String) -> Self { Self(.malformed, detail) }

    /// `{"MaLoi":…,"MoTaLoi":…}`.
    var body: [UInt8] { ReplyBody.error(code, detail: detail) }
}

enum ReplyBody {
    /// The body of a reply that carries only a result.
    static func error(_ code: ResultCode, detail: String? = nil) -> [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.field("MaLoi", code.rawValue)
        w.field("MoTaLoi", detail.map { code.message + ": " + $0 } ?? code.message)
        return w.finish()
    }
}
