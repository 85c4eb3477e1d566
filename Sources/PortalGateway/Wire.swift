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

/// Every reply body: `{"MaLoi":…,"MoTaLoi":…}`.
struct WireAnswer: Encodable, Sendable {
    var MaLoi: String
    var MoTaLoi: String
}
