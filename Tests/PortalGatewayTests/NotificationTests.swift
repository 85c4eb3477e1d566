import FeeReconCore
@testable import PortalGateway
import Signing
import Testing

@Suite struct NotificationTests {
    let secret = try! WebhookSecret("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
    let partner = PartnerCode(rawValue: "BTH")!
    /// PROTOCOL.md's test vector, byte for byte.
    let vectorBody = #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","MaGiaoDich":"PG2305300000123","SoTien":150000,"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","ThongTinGiaoDich":"Thanh toan le phi ho so 000.00.15.H10-230530-0001","MaHoSo":"000.00.15.H10-230530-0001","LanGui":1}"#

    var notifications: PortalNotifications {
        PortalNotifications(partners: [partner: [secret]], clock: { 1_685_416_500 })
    }

    func headers(_ values: [String: String]) -> (String) -> String? { { values[$0] } }

    @Test func verifiesTheProtocolVector() throws {
        let result = notifications.verify(
            header: headers([
                "x-partner-code": "BTH", "webhook-id": "evt_01H1Z6W1V0PQ3T", "webhook-timestamp": "1685416500",
                "webhook-signature": "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",
            ]),
            body: Array(vectorBody.utf8))
        let verified = try result.get()
        #expect(verified.messageID == "evt_01H1Z6W1V0PQ3T")
        #expect(verified.partner == partner)
    }

    @Test func unknownPartnerIsRejectedUnsigned() {
        let result = notifications.verify(
            header: headers(["x-partner-code": "XYZ", "webhook-id": "evt_1", "webhook-timestamp": "1685416500",
                             "webhook-signature": "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA="]),
            body: Array(vectorBody.utf8))
        guard case .failure(let rejection) = result else { Issue.record("accepted"); return }
        #expect(rejection.partner == nil)
    }

    @Test func decodesThePaymentResult() {
        guard case .notification(.paymentResult(let notice), let type, let reference) = notifications.decode(Array(vectorBody.utf8), partner: partner) else {
            Issue.record("not decoded")
            return
        }
        #expect(type == "KETQUA")
        #expect(reference == "PI7Q2K9X4M1N0B3V5C8Z")
        #expect(notice.amount == Money(dong: 150_000))
        #expect(notice.outcome == .known(.succeeded))
        #expect(notice.gatewayTransaction == "PG2305300000123")
        #expect(notice.occurredAt == VietnamTime(compact: "20230530101500"))
        #expect(notice.attempt == 1)
    }

    @Test(arguments: [
        ("00", ReportedOutcome.known(.succeeded)), ("07", .known(.failed(.suspectedFraud))), ("11", .known(.expired)),
        ("24", .known(.cancelled)), ("51", .known(.failed(.insufficientFunds))), ("42", .unrecognized(code: "42")),
    ])
    func mapsEveryResultCode(code: String, outcome: ReportedOutcome) {
        let body = vectorBody.replacingOccurrences(of: #""MaLoi":"00""#, with: #""MaLoi":"\#(code)""#)
        guard case .notification(.paymentResult(let notice), _, _) = notifications.decode(Array(body.utf8), partner: partner) else {
            Issue.record("not decoded")
            return
        }
        #expect(notice.outcome == outcome)
    }

    @Test(arguments: [
        (#""SoTien":150000,"#, #""SoTien":150000.0,"#), (#""SoTien":150000,"#, #""SoTien":0,"#),
        (#""ThoiGianGD":"20230530101500""#, #""ThoiGianGD":"2023-05-30""#), (#""LoaiBanTin":"KETQUA""#, #""LoaiBanTin":"KHAC""#),
        (#""MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z""#, #""MaThamChieu":"PI-7""#), (#""MaTienTe":"VND""#, #""MaTienTe":"USD""#),
        (#""SoTien":150000,"#, #""SoTien":"150000","#),
    ])
    func malformedBodies(original: String, replacement: String) {
        let body = vectorBody.replacingOccurrences(of: original, with: replacement)
        guard case .malformed = notifications.decode(Array(body.utf8), partner: partner) else {
            Issue.record("accepted \(replacement)")
            return
        }
    }

    /// Wire codes reach logs, errors and stored rows only as printable ASCII, at most 8 of them.
    @Test(arguments: [
        ("KETQUA", "KETQUA"), ("00", "00"), ("", ""), ("ABCDEFGH", "ABCDEFGH"), ("ABCDEFGHIJ", "ABCDEFGH"),
        ("KET QUA", "KETQUA"), ("K\u{0}E\nT", "KET"), ("K\u{1EBE}TQU\u{1EA2}", "KTQU"),
        (String(repeating: "\u{1EA2}", count: 8) + "X", ""), ("\u{7F}9\u{1B}[31m", "9[31m"),
    ])
    func codesArePrintedSafely(code: String, printed: String) {
        #expect(PortalGatewayClient.printable(code) == printed)
    }

    @Test func anUnprintableMessageTypeIsStoredPrintable() {
        let body = vectorBody.replacingOccurrences(of: #""LoaiBanTin":"KETQUA""#, with: #""LoaiBanTin":"K\u001bETQUA\u00e9XYZ""#)
        guard case .malformed(_, let type, _) = notifications.decode(Array(body.utf8), partner: partner) else {
            Issue.record("accepted")
            return
        }
        #expect(type == "KETQUA")
    }

    @Test func partnerMismatch() {
        let body = vectorBody.replacingOccurrences(of: #""MaDoiTac":"BTH""#, with: #""MaDoiTac":"XYZ""#)
        guard case .partnerMismatch = notifications.decode(Array(body.utf8), partner: partner) else {
            Issue.record("accepted")
            return
        }
    }

    @Test func refundResults() {
        let refund = #"{"LoaiBanTin":"HOANTIEN","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI1","MaGiaoDich":"PG1","SoTien":150000,"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","MaHoSo":"000.00.15.H10-230530-0001","LanGui":2,"MaYeuCau":"RF1","MaGiaoDichHoan":"RG1","SoTienHoan":50000,"TrangThaiGD":"00"}"#
        guard case .notification(.refundResult(let notice), _, _) = notifications.decode(Array(refund.utf8), partner: partner) else {
            Issue.record("not decoded")
            return
        }
        #expect(notice.completed)
        #expect(notice.refundAmount == Money(dong: 50_000))
        let rejected = refund.replacingOccurrences(of: #""MaLoi":"00""#, with: #""MaLoi":"99""#)
            .replacingOccurrences(of: #""TrangThaiGD":"00""#, with: #""TrangThaiGD":"09""#)
        guard case .notification(.refundResult(let notice2), _, _) = notifications.decode(Array(rejected.utf8), partner: partner) else {
            Issue.record("not decoded")
            return
        }
        #expect(!notice2.completed)
        let inconsistent = refund.replacingOccurrences(of: #""TrangThaiGD":"00""#, with: #""TrangThaiGD":"09""#)
        guard case .malformed = notifications.decode(Array(inconsistent.utf8), partner: partner) else {
            Issue.record("accepted")
            return
        }
    }

    @Test func repliesCarryTheProtocolCodes() throws {
        let cases: [(NotificationAnswer, String, Int, Bool)] = [
            (.applied, "00", 200, true), (.alreadyApplied, "02", 200, true), (.unknownReference, "01", 404, false),
            (.amountMismatch, "04", 422, true), (.malformed("x"), "03", 400, true), (.failure, "99", 500, false),
        ]
        for (answer, code, status, final) in cases {
            let reply = notifications.reply(answer)
            #expect(reply.code == code)
            #expect(reply.status == status)
            #expect(reply.isFinal == final)
            let text = String(decoding: reply.body, as: UTF8.self)
            #expect(text.hasPrefix(#"{"MaLoi":"\#(code)","MoTaLoi":"#))
        }
        #expect(notifications.rejectionReply.status == 401)
        #expect(notifications.tooLargeReply.status == 413)
        let signed = notifications.signedHeaders(for: Array("{}".utf8), partner: partner)
        #expect(signed.contains { $0.name == "webhook-signature" })
        #expect(signed.contains { $0.name == "x-partner-code" && $0.value == "BTH" })
    }

    /// During a key rotation the reply is signed with every configured key: a gateway that holds
    /// only the old one, or only the new one, verifies it.
    @Test func repliesAreSignedWithEveryKeyDuringARotation() throws {
        let next = WebhookSecret.generate()
        let rotating = PortalNotifications(partners: [partner: [secret, next]])
        let body = Array(#"{"MaLoi":"00"}"#.utf8)
        let fields = Dictionary(uniqueKeysWithValues: rotating.signedHeaders(for: body, partner: partner).map { ($0.name, $0.value) })
        #expect(fields["webhook-signature"]?.split(separator: " ").count == 2)
        for key in [secret, next] {
            _ = try WebhookVerifier(secret: key).verify(headers: { fields[$0] }, body: body)
        }
    }
}
