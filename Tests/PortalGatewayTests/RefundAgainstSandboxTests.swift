import FeeReconCore
import Foundation
import PortalGateway
import TestSupport
import Testing

/// §5 through the adapter: every answer to a refund request, and the later `HOANTIEN` callback as
/// `PortalNotifications` decodes it (§3).
@Suite(.timeLimit(.minutes(5))) struct RefundAgainstSandboxTests {
    /// A succeeded payment of 150 000 đồng to refund.
    func paid(_ sandbox: SandboxPeer, notifyURL: String = "http://127.0.0.1:9/callbacks") async throws
        -> (request: CreatePaymentRequest, transaction: String)
    {
        let gateway = sandbox.adapter()
        let request = Requests.payment(notifyURL: notifyURL)
        let accepted = try await gateway.open(request)
        try await sandbox.outcome(accepted.transaction, "success")
        return (request, accepted.transaction)
    }

    @Test func acceptedThenResentThenChanged() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let (payment, transaction) = try await paid(sandbox)
            let refund = Requests.refund(of: payment.reference, transaction: transaction, amount: 50_000)
            let result = try await gateway.refund(refund)
            guard case .accepted(let refundID) = result else {
                Issue.record("not accepted: \(result)")
                return
            }
            #expect(refundID.hasPrefix("HT") && refundID != transaction)

            // The same request again: the same reply.
            #expect(try await gateway.refund(refund) == .accepted(refundTransaction: refundID))

            // The same MaYeuCau with other content: 94, and nothing changes at the gateway.
            var otherAmount = refund
            otherAmount.amount = Money(dong: 40_000)
            #expect(try await gateway.refund(otherAmount) == .rejected(.duplicateWithDifferentContent))
            var otherReason = refund
            otherReason.reason = "Lý do khác"
            #expect(try await gateway.refund(otherReason) == .rejected(.duplicateWithDifferentContent))
            let truth = try await sandbox.require(.get, "/transactions/\(transaction)")
            let refunds = truth["refunds"] as? [[String: Any]] ?? []
            #expect(refunds.count == 1)
            #expect((refunds.first?["amount"] as? NSNumber)?.int64Value == 50_000)
            #expect(refunds.first?["refundId"] as? String == refundID)
            #expect(refunds.first?["wireStatus"] as? String == "05")
        }
    }

    @Test func amountsAgainstWhatIsLeft() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let (payment, transaction) = try await paid(sandbox)
            #expect(try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 150_001))
                == .rejected(.amountMismatch))
            guard case .accepted = try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 100_000))
            else {
                Issue.record("partial refund not accepted")
                return
            }
            // 50 000 is left: one đồng more is too much, and "full" must ask for exactly that.
            #expect(try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 50_001))
                == .rejected(.amountMismatch))
            #expect(try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 40_000, isFull: true))
                == .rejected(.amountMismatch))
            guard case .accepted = try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 50_000))
            else {
                Issue.record("rest not accepted")
                return
            }
            #expect(try await gateway.refund(Requests.refund(of: payment.reference, transaction: transaction, amount: 1))
                == .rejected(.amountMismatch))

            // A full refund of a payment with nothing refunded yet.
            let (other, otherTransaction) = try await paid(sandbox)
            guard case .accepted = try await gateway.refund(
                Requests.refund(of: other.reference, transaction: otherTransaction, amount: 150_000, isFull: true))
            else {
                Issue.record("full refund not accepted")
                return
            }
        }
    }

    @Test func originalNotSuccessful() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            for state in ["pending", "cancel", "insufficient-funds", "expired", "reversed", "reversed after success"] {
                let request = Requests.payment()
                let accepted = try await gateway.open(request)
                switch state {
                case "pending": break
                case "reversed after success":
                    try await sandbox.outcome(accepted.transaction, "success")
                    try await sandbox.require(.post, "/transactions/\(accepted.transaction)/reverse")
                default:
                    try await sandbox.outcome(accepted.transaction, state)
                }
                let result = try await gateway.refund(Requests.refund(of: request.reference, transaction: accepted.transaction, amount: 1_000))
                #expect(result == .rejected(.originalNotSuccessful), "\(state)")
            }
        }
    }

    @Test func unknownTransactionIsNotFound() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let (payment, transaction) = try await paid(sandbox)
            #expect(try await gateway.refund(Requests.refund(of: payment.reference, transaction: "PG260101999999999", amount: 1_000))
                == .rejected(.notFound))
            // A MaGiaoDich that is not the reference's own is unknown as well.
            #expect(try await gateway.refund(Requests.refund(of: Requests.reference(), transaction: transaction, amount: 1_000))
                == .rejected(.notFound))
        }
    }

    /// The refund's outcome arrives later as a signed `HOANTIEN` callback; the adapter's
    /// notification side verifies and decodes it, and its signed `00` ends the delivery.
    @Test func refundResultCallbacksAreDecoded() async throws {
        try await withSharedSandbox { sandbox in
            let receiver = try await NotificationReceiver.start()
            do {
                let gateway = sandbox.adapter()
                let (payment, transaction) = try await paid(sandbox, notifyURL: receiver.url)
                let first = Requests.refund(of: payment.reference, transaction: transaction, amount: 50_000)
                let second = Requests.refund(of: payment.reference, transaction: transaction, amount: 30_000)
                guard case .accepted(let completedID) = try await gateway.refund(first),
                      case .accepted(let rejectedID) = try await gateway.refund(second)
                else {
                    Issue.record("refunds not accepted")
                    return
                }
                try await sandbox.require(.post, "/refunds/\(completedID)/complete", json: #"{"at":"20260115160000"}"#)
                try await sandbox.require(.post, "/refunds/\(rejectedID)/reject")

                let deliveries = try await receiver.wait("both refund results") { $0.compactMap(\.refund).count == 2 }
                #expect(deliveries.allSatisfy { $0.rejection == nil && $0.replyCode == "00" })
                let payments = deliveries.compactMap(\.payment)
                #expect(payments.count == 1)
                #expect(payments.first?.outcome == .known(.succeeded))
                #expect(payments.first?.gatewayTransaction == transaction)
                #expect(payments.first?.amount == Money(dong: 150_000))
                #expect(payments.first?.dossier == Requests.dossier.rawValue)

                let refunds = Dictionary(deliveries.compactMap(\.refund).map { ($0.refundTransaction, $0) }, uniquingKeysWith: { a, _ in a })
                let completed = try #require(refunds[completedID])
                #expect(completed.completed)
                #expect(completed.requestID == first.requestID.rawValue)
                #expect(completed.reference == payment.reference)
                #expect(completed.gatewayTransaction == transaction)
                #expect(completed.refundAmount == Money(dong: 50_000))
                #expect(completed.occurredAt == VietnamTime(compact: "20260115160000"))
                #expect(completed.attempt == 1)
                let rejected = try #require(refunds[rejectedID])
                #expect(!rejected.completed)
                #expect(rejected.requestID == second.requestID.rawValue)
                #expect(rejected.refundAmount == Money(dong: 30_000))

                // The sandbox took the adapter's signed replies as final: every delivery ended.
                try await poll(until: {
                    let rows = try await sandbox.callbacks(transaction: transaction)
                    return rows.count == 3 && rows.allSatisfy { $0["state"] as? String == "delivered" }
                }, deadline: .seconds(20), "deliveries ended")
                #expect(receiver.deliveries.count == 3)
                await receiver.stop()
            } catch {
                await receiver.stop()
                throw error
            }
        }
    }
}
