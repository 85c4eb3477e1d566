import FeeReconCore
import Foundation
import PortalGateway
import Signing
import TestSupport
import Testing

/// §1 through the adapter against the sandbox over loopback HTTP: every answer a create can get,
/// and the signature failures that must surface as errors, never as data.
@Suite(.timeLimit(.minutes(5))) struct CreateAgainstSandboxTests {
    @Test func acceptedWithCheckoutURLAndDeadline() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let request = Requests.payment()
            let result = try await gateway.create(encoded: try gateway.encodeCreate(request), partner: request.partner)
            guard case .accepted(let transaction, let checkoutURL, let expiresAt) = result else {
                Issue.record("not accepted: \(result)")
                return
            }
            #expect(transaction.hasPrefix("PG" + request.requestedAt.compact.dropFirst(2).prefix(6)))
            #expect(checkoutURL == sandbox.apiURL + "/thanh-toan/" + transaction)
            // The sandbox's 15-minute window from the request's ThoiGianGD.
            #expect(expiresAt == request.requestedAt.adding(seconds: 900))

            let truth = try await sandbox.require(.get, "/transactions/\(transaction)")
            #expect(truth["reference"] as? String == request.reference.rawValue)
            #expect((truth["amount"] as? NSNumber)?.int64Value == 150_000)
            #expect((truth["feeAmount"] as? NSNumber)?.int64Value == 50_000)
            #expect((truth["chargeAmount"] as? NSNumber)?.int64Value == 100_000)
            #expect(truth["wireStatus"] as? String == "01")

            // The checkout link is the hosted page the citizen is sent to.
            let page = try await sandbox.http.execute(.init(method: .get, url: checkoutURL), timeout: .seconds(30))
            #expect(page.status == 200)
            #expect(String(decoding: page.body, as: UTF8.self).contains(transaction))

            // A request that sends its own deadline gets it.
            let now = Requests.now
            let own = try await gateway.open(Requests.payment(requestedAt: now, expiresAt: now.adding(seconds: 3_600)))
            #expect(own.expiresAt == now.adding(seconds: 3_600))
        }
    }

    @Test func identicalResendGetsTheSameReply() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let request = Requests.payment()
            let encoded = try gateway.encodeCreate(request)
            let first = try await gateway.create(encoded: encoded, partner: request.partner)
            let second = try await gateway.create(encoded: encoded, partner: request.partner)
            #expect(second == first)
            // Encoding the same request again gives the same bytes, so a rebuilt retry is identical too.
            #expect(try gateway.encodeCreate(request) == encoded)
            #expect(try await gateway.create(encoded: try gateway.encodeCreate(request), partner: request.partner) == first)
            #expect(try await sandbox.truth(reference: request.reference).count == 1)
        }
    }

    @Test func sameReferenceWithAnotherBodyIsADuplicateWithDifferentContent() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let request = Requests.payment()
            guard case .accepted(let transaction, _, _) = try await gateway.create(
                encoded: try gateway.encodeCreate(request), partner: request.partner)
            else {
                Issue.record("first create not accepted")
                return
            }
            var changed = request
            changed.feeLines[0].amount = Money(dong: 90_000)
            changed.amount = Money(dong: 140_000)
            #expect(try await gateway.create(encoded: try gateway.encodeCreate(changed), partner: request.partner)
                == .rejected(.duplicateWithDifferentContent))
            var renamed = request
            renamed.applicantName = "Trần Thị B"
            #expect(try await gateway.create(encoded: try gateway.encodeCreate(renamed), partner: request.partner)
                == .rejected(.duplicateWithDifferentContent))
            // A retry with the same ThoiGianGD is the same request; a fresh timestamp is not.
            var later = request
            later.requestedAt = request.requestedAt.adding(seconds: 1)
            #expect(try await gateway.create(encoded: try gateway.encodeCreate(later), partner: request.partner)
                == .rejected(.duplicateWithDifferentContent))
            // The original is untouched.
            let truth = try await sandbox.require(.get, "/transactions/\(transaction)")
            #expect((truth["amount"] as? NSNumber)?.int64Value == 150_000)
        }
    }

    @Test func amountOtherThanTheSumOfTheFeeLinesIsAnAmountMismatch() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            for amount: Int64 in [149_999, 150_001, 100_000] {
                let request = Requests.payment(amount: amount)
                let result = try await gateway.create(encoded: try gateway.encodeCreate(request), partner: request.partner)
                #expect(result == .rejected(.amountMismatch), "SoTien \(amount)")
            }
        }
    }

    /// Requests the domain types let through but §1's field rules refuse (`03`).
    static let malformedRequests: [(String, @Sendable (inout CreatePaymentRequest) -> Void)] = [
        ("applicant name of 201 characters", { $0.applicantName = String(repeating: "Ư", count: 201) }),
        // 200 characters as Swift counts them (grapheme clusters), but 400 Unicode code points:
        // the gateway counts code points, as PROTOCOL.md's "Unicode characters" reads (and so
        // does the dossier API's NameRule).
        ("applicant name of 200 decomposed characters", { $0.applicantName = String(repeating: "e\u{0301}", count: 200) }),
        ("procedure name of 201 characters", { $0.procedureName = String(repeating: "a", count: 201) }),
        ("fee line name of 201 characters", { $0.feeLines[0].name = String(repeating: "x", count: 201) }),
        // The sandbox's codes are [A-Za-z0-9._-] (its choice where PROTOCOL.md is silent); the
        // dossier API's NameRule.validateCode refuses the same, so this never reaches a gateway.
        ("procedure code with a slash", { $0.procedureCode = "1.001234/2" }),
        ("description of 256 characters", { $0.description = String(repeating: "d", count: 256) }),
        ("empty applicant name", { $0.applicantName = "" }),
        ("control character in a name", { $0.applicantName = "Nguyen\u{7}Van A" }),
        ("payer address that is not an IP literal", { $0.payerAddress = "localhost" }),
        ("notify URL that is not http(s)", { $0.notifyURL = "ftp://service.example/callbacks" }),
        ("51 fee lines", { request in
            request.feeLines = (1...51).map { FeeLine(kind: .fee, code: "F\($0)", name: "Phí \($0)", amount: Money(dong: 1_000)) }
            request.amount = Money(dong: 51_000)
        }),
        ("fee line over 10^12", { request in
            request.feeLines = [FeeLine(kind: .fee, code: "F1", name: "Phí", amount: Money(dong: 1_000_000_000_001))]
            request.amount = Money(dong: 1_000_000_000_001)
        }),
        ("deadline before the request time", { $0.expiresAt = $0.requestedAt.adding(seconds: -60) }),
        ("language other than vi or en", { $0.language = "fr" }),
    ]

    @Test func malformedRequestsAreRefused() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            for (name, change) in Self.malformedRequests {
                var request = Requests.payment()
                change(&request)
                let result = try await gateway.create(encoded: try gateway.encodeCreate(request), partner: request.partner)
                #expect(result == .rejected(.malformedRequest), "\(name)")
            }
            // Dossier codes the service would never hold, sent as raw bytes (`DossierCode` refuses
            // to build them): the gateway's own check of MaHoSo.
            for code in ["000.00.15.H10-230231-0001", "H10-230530-0001", "000.00.15.h10-230530-0001", "000.00.15.H10-230530-001"] {
                let body = String(decoding: try gateway.encodeCreate(Requests.payment()), as: UTF8.self)
                    .replacingOccurrences(of: #""MaHoSo":"000.00.15.H10-230530-0001""#, with: #""MaHoSo":"\#(code)""#)
                #expect(body.contains(code))
                let result = try await gateway.create(encoded: Array(body.utf8), partner: SandboxPeer.partner)
                #expect(result == .rejected(.malformedRequest), "MaHoSo \(code)")
            }
        }
    }

    /// Replies the adapter cannot verify are errors, never data — on every endpoint:
    /// - the adapter holds a key the sandbox does not know: the sandbox refuses the request
    ///   (`97`, signed with the key the adapter cannot check);
    /// - a partner the sandbox does not know gets the one unsigned reply (`401`, `97`);
    /// - a request the sandbox finds stale is refused, and the reply, timestamped by the
    ///   sandbox's clock, is just as stale to the adapter's.
    /// A body naming another partner than the signed header is refused `97` — signed, since the
    /// header's partner is known — which the adapter reports as a definite refusal.
    @Test func signatureFailuresAreErrorsNeverData() async throws {
        try await withSharedSandbox { sandbox in
            let request = Requests.payment()
            let stranger = sandbox.adapter(secrets: [Keys.stranger])
            #expect(await GatewayError.kind { try await stranger.create(encoded: try stranger.encodeCreate(request), partner: request.partner) }
                == .badReplySignature)
            #expect(await GatewayError.kind { try await stranger.query(reference: request.reference, partner: request.partner) }
                == .badReplySignature)
            #expect(await GatewayError.kind {
                try await stranger.refund(Requests.refund(of: request.reference, transaction: "PG1", amount: 1_000))
            } == .badReplySignature)
            #expect(await GatewayError.kind {
                try await stranger.fetchSettlement(day: CivilDate(year: 2025, month: 1, day: 1)!, partner: request.partner) { _ in }
            } == .badReplySignature)

            let otherPartner = PartnerCode(rawValue: "HNI")!
            let unknown = sandbox.adapter(secrets: [Keys.partner], partner: otherPartner)
            var foreign = request
            foreign.partner = otherPartner
            #expect(await GatewayError.kind { try await unknown.create(encoded: try unknown.encodeCreate(foreign), partner: otherPartner) }
                == .badReplySignature)

            let late = sandbox.adapter(clock: { Int64(Date().timeIntervalSince1970) - 600 })
            #expect(await GatewayError.kind { try await late.create(encoded: try late.encodeCreate(request), partner: request.partner) }
                == .badReplySignature)

            let gateway = sandbox.adapter()
            let body = String(decoding: try gateway.encodeCreate(request), as: UTF8.self)
                .replacingOccurrences(of: #""MaDoiTac":"BTH""#, with: #""MaDoiTac":"HNI""#)
            let mismatch = try await gateway.create(encoded: Array(body.utf8), partner: request.partner)
            #expect(mismatch == .rejected(.signatureRejected))

            // None of it created anything.
            let truth = try await sandbox.truth(reference: request.reference)
            #expect(truth.isEmpty)
        }
    }

    /// The sandbox has moved to a new key and still accepts the old one (rotation), so it processes
    /// the request — but its reply is signed with the new key, which the adapter does not have yet.
    /// The adapter must report an error (the outcome is unknown), not the unverifiable acceptance.
    @Test func replySignedWithAKeyTheAdapterDoesNotHoldIsAnError() async throws {
        try await withSandbox(sandboxKeys: [Keys.next, Keys.partner]) { sandbox in
            let old = sandbox.adapter(secrets: [Keys.partner])
            let request = Requests.payment()
            let encoded = try old.encodeCreate(request)
            #expect(await GatewayError.kind { try await old.create(encoded: encoded, partner: request.partner) } == .badReplySignature)
            #expect(await GatewayError.kind { try await old.query(reference: request.reference, partner: request.partner) }
                == .badReplySignature)

            // With both keys the adapter verifies the reply (any key) and signs with both.
            let rotated = sandbox.adapter(secrets: [Keys.partner, Keys.next])
            guard case .accepted(let transaction, _, _) = try await rotated.create(encoded: encoded, partner: request.partner) else {
                Issue.record("not accepted after rotation")
                return
            }
            let report = try await rotated.query(reference: request.reference, partner: request.partner)
            #expect(report.status == .known(.pending))
            #expect(report.gatewayTransaction == transaction)
            // Signing with the new key works as well.
            let moved = sandbox.adapter(secrets: [Keys.next])
            #expect(try await moved.query(reference: request.reference, partner: request.partner).status == .known(.pending))
        }
    }

    /// The gateway has finished its rotation and holds only the new key, while the service still
    /// holds both: its requests carry a signature by each key, so they are accepted.
    @Test func requestsAreSignedWithEveryKeyDuringARotation() async throws {
        try await withSandbox(sandboxKeys: [Keys.next]) { sandbox in
            let rotating = sandbox.adapter(secrets: [Keys.partner, Keys.next])
            let request = Requests.payment()
            guard case .accepted = try await rotating.create(encoded: try rotating.encodeCreate(request), partner: request.partner) else {
                Issue.record("a request signed with both keys was not accepted")
                return
            }
            #expect(try await rotating.query(reference: request.reference, partner: request.partner).status == .known(.pending))
        }
    }
}
