import Foundation
import Testing

@testable import PortalGateway

/// The fast reading of a flat callback body agrees with `JSONDecoder` on every body it accepts,
/// and leaves every other body to it.
@Suite struct FlatDecodingTests {
    static let bodies: [String] = [
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","MaGiaoDich":"PG2305300000123","SoTien":150000,"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","ThongTinGiaoDich":"Thanh toan le phi ho so 000.00.15.H10-230530-0001","MaHoSo":"000.00.15.H10-230530-0001","LanGui":1}"#,
        #" { "LoaiBanTin" : "HOANTIEN" , "MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":-0,"ThoiGianGD":"x","MaYeuCau":"RF1","MaGiaoDichHoan":"HT1","SoTienHoan":9223372036854775807,"TrangThaiGD":"00","LanGui":null,"Extra":"ignored","More":-12} "#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":-9223372036854775808,"ThoiGianGD":"Thời gian","MaNganHang":null}"#,
        // Not the flat shape, or not valid: JSONDecoder decides.
        #"{"LoaiBanTin":"KET\u0051UA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":1,"ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":"1","ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":0,"MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":1,"ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":null,"ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","SoTien":1,"ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":99999999999999999999,"ThoiGianGD":"x"}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":1,"ThoiGianGD":"x","LanGui":true}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":1,"ThoiGianGD":"x","X":{"a":1}}"#,
        #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":1,"ThoiGianGD":"x","MaHoSo":"a\"b"}"#,
        #"[1,2]"#, #"{}"#, #""KETQUA""#,
    ]

    @Test(arguments: bodies)
    func agreesWithJSONDecoder(_ text: String) {
        expectFlatReadingAgrees(text, WireCallback.decodeFlat)
    }

    @Test func takesTheCommonShape() {
        #expect(WireCallback.decodeFlat(Array(Self.bodies[0].utf8)) != nil)
        #expect(WireCallback.decodeFlat(Array(Self.bodies[1].utf8)) != nil)
    }
}

/// The fast reading of a flat reply agrees with `JSONDecoder` on every reply it accepts.
@Suite struct FlatReplyDecodingTests {
    static let bodies: [String] = [
        #"{"MaLoi":"00","MoTaLoi":"Thành công","MaThamChieu":"PI1","MaGiaoDich":"PG1","DuongDanThanhToan":"http://127.0.0.1:8/ppdvcqg/v1/thanh-toan/PG1","HanThanhToan":"20240101103000"}"#,
        #"{"MaLoi":"00","TrangThaiGD":"00","SoTien":150000,"SoTienDaHoan":0,"MaNganHang":"VCB","ThoiGianGD":"20240101101500","MaGiaoDichHoan":null}"#,
        #"{"MaLoi":"99"}"#,
        // Not the flat shape, or not valid: JSONDecoder decides.
        #"{"MaLoi":"00","DuongDanThanhToan":"http:\/\/127.0.0.1\/x"}"#,
        #"{"MaLoi":0}"#,
        #"{"MaLoi":null}"#,
        #"{"MoTaLoi":"no code"}"#,
        #"{"MaLoi":"00","SoTien":"150000"}"#,
        #"{"MaLoi":"00","SoTien":1.5}"#,
        #"{"MaLoi":"00","Extra":[1]}"#,
    ]

    @Test(arguments: bodies)
    func agreesWithJSONDecoder(_ text: String) {
        expectFlatReadingAgrees(text, WireReply.decodeFlat)
    }

    @Test func takesTheCommonShape() {
        for text in Self.bodies.prefix(3) { #expect(WireReply.decodeFlat(Array(text.utf8)) != nil) }
    }
}

/// Where the fast reader of `T` accepts `text`, it reads what `JSONDecoder` reads.
func expectFlatReadingAgrees<T: Decodable>(
    _ text: String, _ decodeFlat: ([UInt8]) -> T?, sourceLocation: SourceLocation = #_sourceLocation
) {
    let body = Array(text.utf8)
    let reference = try? JSONDecoder().decode(T.self, from: Data(body))
    if let fast = decodeFlat(body) {
        #expect(reference.map { String(describing: $0) } == String(describing: fast), sourceLocation: sourceLocation)
    }
}
