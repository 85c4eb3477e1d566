import Foundation
import Testing

@testable import PortalGateway

/// The hand-written create request encoder writes exactly what `JSONEncoder` writes for the same
/// request (sorted keys, slashes unescaped, absent optionals left out), whatever the text holds.
@Suite struct WireEncodingTests {
    static func request(
        name: String = "Nguyễn Văn A", info: String = "Thanh toan le phi ho so 000.00.15.H10-230530-0001",
        deadline: String? = "20230530111500", lines: Int = 2
    ) -> WireCreateRequest {
        WireCreateRequest(
            MaDoiTac: "BTH", MaThamChieu: "PI7Q2K9X4M1N0B3V5C8Z", SoTien: 150_000 * Int64(lines), NgonNgu: "vi",
            ThoiGianGD: "20230530101500", HanThanhToan: deadline, Ip: "203.0.113.7", ThongTinGiaoDich: info,
            UrlTraVe: "https://dichvucong.example.gov.vn/tra-ve?ma=1&b=/x", UrlThongBao: "https://feerecon.example/v1/callbacks/portal",
            ThongTinBienLai: WireReceipt(
                MaHoSo: "000.00.15.H10-230530-0001", MaTTHC: "1.001234", TenTTHC: "Cấp bản sao trích lục hộ tịch",
                MaDonVi: "000.00.15.H10", TenDonVi: "Sở Tư pháp", HoTenNguoiNop: name,
                PhiLePhi: (0..<lines).map { i in
                    WireFeeLine(LoaiPhiLePhi: i % 2 == 0 ? "2" : "1", MaPhiLePhi: "LP0\(i)", TenPhiLePhi: "Lệ phí \(i)", SoTien: 150_000)
                }))
    }

    static let requests: [WireCreateRequest] = [
        request(),
        request(deadline: nil, lines: 1),
        request(name: #"Quote " back\slash / slash"#, lines: 50),
        request(name: "controls \u{0}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F} end", info: "emoji 🇻🇳 and e\u{301} decomposed"),
        request(name: "", info: "", lines: 0),
    ]

    @Test(arguments: requests)
    func equalsJSONEncoder(_ request: WireCreateRequest) throws {
        let reference = try PortalGatewayClient.encode(request)
        #expect(String(decoding: request.encoded(), as: UTF8.self) == String(decoding: reference, as: UTF8.self))
        #expect(request.encoded() == reference)
    }
}
