import Foundation
import Testing

@testable import FeeReconServer

/// The hand-written "dossier paid" payload is byte for byte what `JSONEncoder` makes of it.
@Suite struct PaidNotificationEncodingTests {
    static let awkward = [
        "PG2305300000123", "VCB", "", "a\"b\\c/d", "tab\there\nnew\rline\u{08}\u{0C}", "\u{00}\u{01}\u{1F}\u{7F}",
        "Ngân hàng Công Thương", "😀\u{2028}",
    ]

    static let dates: [Date?] = [
        nil, Date(timeIntervalSince1970: 1_685_416_500), Date(timeIntervalSince1970: 1_685_416_500.999_999),
        Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 951_782_400), Date(timeIntervalSince1970: 4_102_444_799),
    ]

    @Test(arguments: awkward, dates)
    func matchesJSONEncoder(text: String, paidAt: Date?) throws {
        let value = DossierPaidNotification(
            type: "dossier.paid", id: "ntf_0123456789abcdef0123456789abcdef", dossierCode: "000.00.15.H10-230530-0001",
            status: "paid", amountDue: 150_000, amountPaid: 1_000_000_000_000,
            payment: .init(
                intentId: "6f1c1c9e-43a1-4f7e-9d0c-2a5f6f2c1b3a", reference: "PI7Q2K9X4M1N0B3V5C8Z",
                gatewayTransaction: text, amount: 150_000, bankCode: text, paidAt: paidAt))
        #expect(value.encoded() == (try JSONCoding.encode(value)))
    }

    @Test func absentOptionalsAreLeftOut() throws {
        let value = DossierPaidNotification(
            type: "dossier.paid", id: "ntf_1", dossierCode: "000.00.15.H10-230530-0001", status: "overpaid",
            amountDue: 1, amountPaid: -2,
            payment: .init(intentId: "x", reference: "PI1", gatewayTransaction: nil, amount: 1, bankCode: nil, paidAt: nil))
        #expect(value.encoded() == (try JSONCoding.encode(value)))
    }
}
