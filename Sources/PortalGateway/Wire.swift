import FeeReconCore

// The portal's wire messages (PROTOCOL.md). Vietnamese field names live in this file and nowhere
// else in the service; everything outside this module speaks FeeReconCore's types.

/// `MaLoi`: the result code of a reply or a callback.
enum ResultCode: String, Sendable {
    case success = "00"
    case notFound = "01"
    case alreadyConfirmed = "02"
    case malformed = "03"
    case amountMismatch = "04"
    case suspectedFraud = "07"
    case expired = "11"
    case cancelledByPayer = "24"
    case insufficientFunds = "51"
    case transactionNotFound = "91"
    case duplicateDifferentContent = "94"
    case originalNotSuccessful = "95"
    case invalidSignature = "97"
    case otherError = "99"

    /// The HTTP status of a reply carrying this code.
    var httpStatus: Int {
        switch self {
        case .success, .alreadyConfirmed: 200
        case .notFound, .transactionNotFound: 404
        case .malformed: 400
        case .amountMismatch, .originalNotSuccessful: 422
        case .duplicateDifferentContent: 409
        case .invalidSignature: 401
        case .otherError, .suspectedFraud, .expired, .cancelledByPayer, .insufficientFunds: 500
        }
    }

    /// The Vietnamese description (`MoTaLoi`) the service puts in its replies.
    var vietnameseDescription: String {
        switch self {
        case .success: "Thanh cong"
        case .notFound: "Khong tim thay giao dich"
        case .alreadyConfirmed: "Giao dich da duoc xac nhan"
        case .malformed: "Du lieu khong hop le"
        case .amountMismatch: "So tien khong khop"
        case .suspectedFraud: "Giao dich nghi ngo gian lan"
        case .expired: "Het thoi gian thanh toan"
        case .cancelledByPayer: "Nguoi nop huy giao dich"
        case .insufficientFunds: "Tai khoan khong du so du"
        case .transactionNotFound: "Khong tim thay giao dich"
        case .duplicateDifferentContent: "Trung ma yeu cau voi noi dung khac"
        case .originalNotSuccessful: "Giao dich goc khong thanh cong"
        case .invalidSignature: "Chu ky khong hop le"
        case .otherError: "Loi khac"
        }
    }
}

/// `TrangThaiGD`: a transaction's status in query replies and settlement rows.
enum TransactionStatusCode: String, Sendable {
    case success = "00"
    case pending = "01"
    case failed = "02"
    case reversed = "04"
    case refundInProgress = "05"
    case refundSent = "06"
    case refundRejected = "09"
}

/// `LoaiPhiLePhi`.
extension FeeKind {
    init?(wire: String) {
        switch wire {
        case "1": self = .fee
        case "2": self = .charge
        default: return nil
        }
    }

    var wire: String {
        switch self {
        case .fee: "1"
        case .charge: "2"
        }
    }
}

struct WireFeeLine: Codable, Sendable {
    var LoaiPhiLePhi: String
    var MaPhiLePhi: String
    var TenPhiLePhi: String
    var SoTien: Int64
}

struct WireReceipt: Codable, Sendable {
    var MaHoSo: String
    var MaTTHC: String
    var TenTTHC: String
    var MaDonVi: String
    var TenDonVi: String
    var HoTenNguoiNop: String
    var PhiLePhi: [WireFeeLine]
}

/// §1 request body.
struct WireCreateRequest: Codable, Sendable {
    var LoaiBanTin = "KHOITAO"
    var PhienBan = "1.0"
    var MaDoiTac: String
    var MaThamChieu: String
    var SoTien: Int64
    var MaTienTe = "VND"
    var NgonNgu: String
    var ThoiGianGD: String
    var HanThanhToan: String?
    var Ip: String
    var ThongTinGiaoDich: String
    var UrlTraVe: String
    var UrlThongBao: String
    var ThongTinBienLai: WireReceipt
}

extension WireCreateRequest {
    /// The bytes `PortalGatewayClient.encode` makes of this request (`JSONEncoder`, keys sorted,
    /// slashes unescaped, absent optionals left out), written directly: `JSONEncoder` was a tenth
    /// of the service's cost of creating an intent. `WireEncodingTests` hold the two equal.
    func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        json.field("HanThanhToan", HanThanhToan)
        json.field("Ip", Ip)
        json.field("LoaiBanTin", LoaiBanTin)
        json.field("MaDoiTac", MaDoiTac)
        json.field("MaThamChieu", MaThamChieu)
        json.field("MaTienTe", MaTienTe)
        json.field("NgonNgu", NgonNgu)
        json.field("PhienBan", PhienBan)
        json.field("SoTien", SoTien)
        json.field("ThoiGianGD", ThoiGianGD)
        json.key("ThongTinBienLai")
        json.beginObject()
        json.field("HoTenNguoiNop", ThongTinBienLai.HoTenNguoiNop)
        json.field("MaDonVi", ThongTinBienLai.MaDonVi)
        json.field("MaHoSo", ThongTinBienLai.MaHoSo)
        json.field("MaTTHC", ThongTinBienLai.MaTTHC)
        json.key("PhiLePhi")
        json.beginArray()
        for line in ThongTinBienLai.PhiLePhi {
            json.beginObject()
            json.field("LoaiPhiLePhi", line.LoaiPhiLePhi)
            json.field("MaPhiLePhi", line.MaPhiLePhi)
            json.field("SoTien", line.SoTien)
            json.field("TenPhiLePhi", line.TenPhiLePhi)
            json.endObject()
        }
        json.endArray()
        json.field("TenDonVi", ThongTinBienLai.TenDonVi)
        json.field("TenTTHC", ThongTinBienLai.TenTTHC)
        json.endObject()
        json.field("ThongTinGiaoDich", ThongTinGiaoDich)
        json.field("UrlThongBao", UrlThongBao)
        json.field("UrlTraVe", UrlTraVe)
        json.endObject()
        return json.bytes
    }
}

/// The fields every reply may carry; each operation reads the ones its section lists.
struct WireReply: Decodable, Sendable {
    var MaLoi: String
    var MoTaLoi: String?
    var MaThamChieu: String?
    var MaGiaoDich: String?
    var DuongDanThanhToan: String?
    var HanThanhToan: String?
    var TrangThaiGD: String?
    var SoTien: Int64?
    var SoTienDaHoan: Int64?
    var MaNganHang: String?
    var ThoiGianGD: String?
    var MaGiaoDichHoan: String?
}

/// §4 request body.
struct WireQueryRequest: Codable, Sendable {
    var LoaiBanTin = "TRACUU"
    var MaDoiTac: String
    var MaThamChieu: String
    var ThoiGianGD: String
}

/// §5 request body.
struct WireRefundRequest: Codable, Sendable {
    var LoaiBanTin = "HOANTIEN"
    var MaDoiTac: String
    var MaYeuCau: String
    var MaThamChieu: String
    var MaGiaoDich: String
    var LoaiHoanTien: String
    var SoTienHoan: Int64
    var NguoiTao: String
    var LyDo: String
    var ThoiGianGD: String
}

/// §3 callback body (`KETQUA` or `HOANTIEN`).
struct WireCallback: Decodable, Sendable {
    var LoaiBanTin: String
    var MaLoi: String
    var MaDoiTac: String
    var MaThamChieu: String
    var MaGiaoDich: String
    var SoTien: Int64
    var MaTienTe: String?
    var MaNganHang: String?
    var ThoiGianGD: String
    var ThongTinGiaoDich: String?
    var MaHoSo: String?
    var LanGui: Int?
    var MaYeuCau: String?
    var MaGiaoDichHoan: String?
    var SoTienHoan: Int64?
    var TrangThaiGD: String?
}

/// One flat JSON object — members that are plain strings (no escapes), integers or null — read
/// without `JSONDecoder`, which is most of the cost of parsing the gateway's messages. Nil means
/// "not that shape": the caller then decodes with `JSONDecoder`, whose result (or error) is the
/// reference. The body must have passed `StrictJSON.validate` (well-formed, no duplicate keys).
struct FlatJSONObject {
    private var strings: [String: String] = [:]
    private var integers: [String: Int64] = [:]

    init?(_ body: [UInt8]) {
        var i = 0
        let n = body.count
        func skipSpace() { while i < n, body[i] == 0x20 || body[i] == 0x09 || body[i] == 0x0A || body[i] == 0x0D { i += 1 } }
        /// A string without escapes, from the opening quote; nil if it has any.
        func plainString() -> String? {
            guard i < n, body[i] == UInt8(ascii: "\"") else { return nil }
            let start = i + 1
            var j = start
            while j < n, body[j] != UInt8(ascii: "\"") {
                if body[j] == UInt8(ascii: "\\") { return nil }
                j += 1
            }
            guard j < n else { return nil }
            i = j + 1
            return String(decoding: body[start..<j], as: UTF8.self)
        }
        skipSpace()
        guard i < n, body[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace()
        if i < n, body[i] == UInt8(ascii: "}") { return nil }
        while true {
            skipSpace()
            guard let key = plainString() else { return nil }
            skipSpace()
            guard i < n, body[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            guard i < n else { return nil }
            switch body[i] {
            case UInt8(ascii: "\""):
                guard let value = plainString() else { return nil }
                strings[key] = value
            case UInt8(ascii: "n"):
                i += 4  // null: the same as absent for every field
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let negative = body[i] == UInt8(ascii: "-")
                if negative { i += 1 }
                var value: Int64 = 0
                while i < n, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(body[i]) {
                    let (times, o1) = value.multipliedReportingOverflow(by: 10)
                    let (plus, o2) = times.subtractingReportingOverflow(Int64(body[i] - UInt8(ascii: "0")))
                    guard !o1, !o2 else { return nil }
                    value = plus
                    i += 1
                }
                if !negative {
                    guard value != .min else { return nil }
                    value = -value
                }
                integers[key] = value
            default:
                return nil
            }
            skipSpace()
            guard i < n else { return nil }
            if body[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard body[i] == UInt8(ascii: "}") else { return nil }
            break
        }
    }

    /// `.some(value)` for a string, `.some(nil)` when absent or null, nil when it is a number
    /// (the wrong type is `JSONDecoder`'s to report).
    func string(_ key: String) -> String?? {
        if let value = strings[key] { return .some(value) }
        if integers[key] != nil { return nil }
        return .some(nil)
    }

    /// `.some(value)` for an integer, `.some(nil)` when absent or null, nil when it is a string.
    func integer(_ key: String) -> Int64?? {
        if let value = integers[key] { return .some(value) }
        if strings[key] != nil { return nil }
        return .some(nil)
    }
}

extension WireCallback {
    /// The common shape of a callback read as a `FlatJSONObject`; nil leaves it to `JSONDecoder`.
    static func decodeFlat(_ body: [UInt8]) -> WireCallback? {
        guard let object = FlatJSONObject(body) else { return nil }
        let string = object.string, integer = object.integer
        // A key the wrong type, or null where a value is required, is JSONDecoder's to report.
        guard let type = string("LoaiBanTin") ?? nil, let code = string("MaLoi") ?? nil, let partner = string("MaDoiTac") ?? nil,
              let reference = string("MaThamChieu") ?? nil, let txn = string("MaGiaoDich") ?? nil,
              let amount = integer("SoTien") ?? nil, let time = string("ThoiGianGD") ?? nil,
              case .some(let currency) = string("MaTienTe"), case .some(let bank) = string("MaNganHang"),
              case .some(let info) = string("ThongTinGiaoDich"), case .some(let dossier) = string("MaHoSo"),
              case .some(let attempt) = integer("LanGui"), case .some(let requestID) = string("MaYeuCau"),
              case .some(let refundTxn) = string("MaGiaoDichHoan"), case .some(let refundAmount) = integer("SoTienHoan"),
              case .some(let status) = string("TrangThaiGD")
        else { return nil }
        let attemptNumber: Int?
        if let attempt {
            guard let value = Int(exactly: attempt) else { return nil }
            attemptNumber = value
        } else {
            attemptNumber = nil
        }
        return WireCallback(
            LoaiBanTin: type, MaLoi: code, MaDoiTac: partner, MaThamChieu: reference, MaGiaoDich: txn, SoTien: amount,
            MaTienTe: currency, MaNganHang: bank, ThoiGianGD: time, ThongTinGiaoDich: info, MaHoSo: dossier,
            LanGui: attemptNumber, MaYeuCau: requestID, MaGiaoDichHoan: refundTxn, SoTienHoan: refundAmount, TrangThaiGD: status)
    }
}

extension WireReply {
    /// A reply read as a `FlatJSONObject`; nil leaves it to `JSONDecoder`.
    static func decodeFlat(_ body: [UInt8]) -> WireReply? {
        guard let object = FlatJSONObject(body) else { return nil }
        guard let code = object.string("MaLoi") ?? nil,
              case .some(let description) = object.string("MoTaLoi"), case .some(let reference) = object.string("MaThamChieu"),
              case .some(let txn) = object.string("MaGiaoDich"), case .some(let url) = object.string("DuongDanThanhToan"),
              case .some(let deadline) = object.string("HanThanhToan"), case .some(let status) = object.string("TrangThaiGD"),
              case .some(let amount) = object.integer("SoTien"), case .some(let refunded) = object.integer("SoTienDaHoan"),
              case .some(let bank) = object.string("MaNganHang"), case .some(let time) = object.string("ThoiGianGD"),
              case .some(let refundTxn) = object.string("MaGiaoDichHoan")
        else { return nil }
        return WireReply(
            MaLoi: code, MoTaLoi: description, MaThamChieu: reference, MaGiaoDich: txn, DuongDanThanhToan: url,
            HanThanhToan: deadline, TrangThaiGD: status, SoTien: amount, SoTienDaHoan: refunded, MaNganHang: bank,
            ThoiGianGD: time, MaGiaoDichHoan: refundTxn)
    }
}

/// Every reply body: `{"MaLoi":…,"MoTaLoi":…}`.
struct WireAnswer: Encodable, Sendable {
    var MaLoi: String
    var MoTaLoi: String
}
