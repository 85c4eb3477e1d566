import CurlHTTP
import FeeReconCore
import Logging
@testable import PortalGateway
import Testing

/// The same message is always the same bytes.
@Suite struct EncodingTests {
    static let request = CreatePaymentRequest(
        partner: PartnerCode(rawValue: "BTH")!, reference: PaymentReference(rawValue: "PI7Q2K9X4M1N0B3V5C8Z")!,
        amount: Money(dong: 150_000), requestedAt: VietnamTime(compact: "20230530101000")!, payerAddress: "203.0.113.7",
        description: "Thanh toan le phi ho so 000.00.15.H10-230530-0001", returnURL: "https://service.example/pay/return",
        notifyURL: "https://service.example/v1/callbacks/portal", dossier: DossierCode(rawValue: "000.00.15.H10-230530-0001")!,
        procedureCode: "1.001234", procedureName: "Cap ban sao trich luc", agencyCode: AgencyCode(rawValue: "000.00.15.H10")!,
        agencyName: "So Tu phap", applicantName: "Nguyen Van A",
        feeLines: [
            FeeLine(kind: .charge, code: "LP01", name: "Le phi", amount: Money(dong: 100_000)),
            FeeLine(kind: .fee, code: "PH01", name: "Phi", amount: Money(dong: 50_000)),
        ])

    var client: PortalGatewayClient {
        get throws {
            PortalGatewayClient(
                configuration: PortalConfiguration(baseURL: "http://127.0.0.1:9/ppdvcqg/v1", partners: [:]),
                http: try CurlHTTPClient(), logger: .init(label: "test"))
        }
    }

    @Test func aCreateRequestIsEncodedTheSameWayEveryTime() throws {
        let gateway = try client
        let first = try gateway.encodeCreate(Self.request)
        for _ in 0..<20 { #expect(try gateway.encodeCreate(Self.request) == first) }
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix(#"{"Ip":"203.0.113.7","LoaiBanTin":"KHOITAO","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","#))
        #expect(text.contains(#""PhiLePhi":[{"LoaiPhiLePhi":"2","MaPhiLePhi":"LP01","SoTien":100000,"TenPhiLePhi":"Le phi"},"#))
        #expect(text.contains(#""UrlThongBao":"https://service.example/v1/callbacks/portal""#))
    }

    @Test func repliesToCallbacksAreTheSameBytesEveryTime() {
        let notifications = PortalNotifications(partners: [:])
        for answer in [NotificationAnswer.applied, .alreadyApplied, .unknownReference, .amountMismatch, .failure] {
            let body = notifications.reply(answer).body
            #expect(String(decoding: body, as: UTF8.self).hasPrefix(#"{"MaLoi":""#))
            for _ in 0..<20 { #expect(notifications.reply(answer).body == body) }
        }
    }
}
