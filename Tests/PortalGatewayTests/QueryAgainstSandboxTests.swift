import CurlHTTP
import FeeReconCore
import Foundation
import PortalGateway
import TestSupport
import Testing

/// §4 through the adapter: every `TrangThaiGD` the sandbox produces for a payment, reached through
/// the hosted page (§2) or the control API, and `91` for an unknown reference.
@Suite(.timeLimit(.minutes(5))) struct QueryAgainstSandboxTests {
    @Test func pendingAndUnknownPayments() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let request = Requests.payment()
            let accepted = try await gateway.open(request)
            let report = try await gateway.query(reference: request.reference, partner: request.partner)
            #expect(report.reference == request.reference)
            #expect(report.status == .known(.pending))
            #expect(report.gatewayTransaction == accepted.transaction)
            #expect(report.amount == Money(dong: 150_000))
            #expect(report.amountRefunded == .zero)
            #expect(report.occurredAt == request.requestedAt)

            // A reference the gateway never saw is 91: not found. Asked again (a fresh message),
            // still not found: a 91 is not remembered as final.
            let unknown = Requests.reference()
            let missing = try await gateway.query(reference: unknown, partner: SandboxPeer.partner)
            #expect(missing.status == .notFound)
            #expect(missing.reference == unknown)
            #expect(missing.gatewayTransaction == nil)
            #expect(try await gateway.query(reference: unknown, partner: SandboxPeer.partner).status == .notFound)
        }
    }

    /// How an outcome is reached: a button of the hosted page, or the control API.
    enum Route: String, Sendable, CaseIterable { case page, control }

    struct Outcome: Sendable {
        var pageCode: String
        var controlName: String
        var status: PaymentStatusReport.Status
        /// Whether the payer got as far as a bank (`MaNganHang` is set).
        var reachedBank: Bool
    }

    static let outcomes: [Outcome] = [
        Outcome(pageCode: "00", controlName: "success", status: .known(.succeeded), reachedBank: true),
        Outcome(pageCode: "24", controlName: "cancel", status: .known(.failed(.declined)), reachedBank: false),
        Outcome(pageCode: "51", controlName: "insufficient-funds", status: .known(.failed(.declined)), reachedBank: true),
        Outcome(pageCode: "11", controlName: "expired", status: .known(.failed(.declined)), reachedBank: false),
        Outcome(pageCode: "07", controlName: "reversed", status: .known(.failed(.reversed)), reachedBank: true),
    ]

    @Test(arguments: Route.allCases)
    func everyOutcomeIsReportedByQuery(route: Route) async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            for outcome in Self.outcomes {
                let request = Requests.payment()
                let accepted = try await gateway.open(request)
                switch route {
                case .page:
                    let next = try await sandbox.pay(checkoutURL: accepted.checkoutURL, code: outcome.pageCode)
                    #expect(next.hasPrefix("https://service.example/pay/return?"))
                    #expect(next.contains("MaThamChieu=\(request.reference.rawValue)"))
                    #expect(next.contains("MaLoi=\(outcome.pageCode)"))
                case .control:
                    try await sandbox.outcome(accepted.transaction, outcome.controlName)
                }
                let report = try await gateway.query(reference: request.reference, partner: request.partner)
                #expect(report.status == outcome.status, "\(outcome.controlName)")
                #expect(report.gatewayTransaction == accepted.transaction)
                #expect(report.amount == Money(dong: 150_000))
                #expect(report.occurredAt != nil)
                #expect((report.bankCode ?? "").isEmpty == !outcome.reachedBank, "\(outcome.controlName)")
                let truth = try await sandbox.require(.get, "/transactions/\(accepted.transaction)")
                #expect(truth["outcomeCode"] as? String == outcome.pageCode)
            }
        }
    }

    /// Corrections by the control API: a success reversed later (the callback said `00`, the
    /// query now says `04`), and an expired payment that succeeds after all (`00` again).
    @Test func reversalAndLateSuccessAreReported() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let reversed = Requests.payment()
            let paid = try await gateway.open(reversed)
            try await sandbox.outcome(paid.transaction, "success")
            #expect(try await gateway.query(reference: reversed.reference, partner: reversed.partner).status == .known(.succeeded))
            try await sandbox.require(.post, "/transactions/\(paid.transaction)/reverse")
            let report = try await gateway.query(reference: reversed.reference, partner: reversed.partner)
            #expect(report.status == .known(.failed(.reversed)))
            #expect(report.amount == Money(dong: 150_000))

            let late = Requests.payment()
            let expired = try await gateway.open(late)
            try await sandbox.require(.post, "/transactions/\(expired.transaction)/expire")
            #expect(try await gateway.query(reference: late.reference, partner: late.partner).status == .known(.failed(.declined)))
            try await sandbox.require(.post, "/transactions/\(expired.transaction)/late-success")
            let after = try await gateway.query(reference: late.reference, partner: late.partner)
            #expect(after.status == .known(.succeeded))
            #expect(!(after.bankCode ?? "").isEmpty)
        }
    }

    /// The same, by the sandbox's fault switch: a success that the gateway reverses by itself later.
    @Test func faultReversalAfterSuccessIsReported() async throws {
        try await withSandbox(settings: { settings in
            settings.faults.reverseAfterSuccess = 1
            settings.faults.reverseAfterMilliseconds = 100
        }) { sandbox in
            let gateway = sandbox.adapter()
            let receiver = try await NotificationReceiver.start()
            do {
                let request = Requests.payment(notifyURL: receiver.url)
                let accepted = try await gateway.open(request)
                try await sandbox.outcome(accepted.transaction, "success")
                try await poll(until: {
                    try await gateway.query(reference: request.reference, partner: request.partner).status == .known(.failed(.reversed))
                }, deadline: .seconds(20), "reversal visible to query")
                // The callback had said success, and no callback announced the reversal.
                let deliveries = try await receiver.wait("success callback") { $0.contains { $0.payment != nil } }
                #expect(deliveries.compactMap(\.payment).map(\.outcome) == [.known(.succeeded)])
                await receiver.stop()
            } catch {
                await receiver.stop()
                throw error
            }
        }
    }

    /// A refund does not change the payment's own status in a query (§4); only completed refunds
    /// count in `SoTienDaHoan`.
    @Test func refundsShowInTheRefundedAmountOnly() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let request = Requests.payment()
            let accepted = try await gateway.open(request)
            try await sandbox.outcome(accepted.transaction, "success")
            guard case .accepted(let refundID) = try await gateway.refund(
                Requests.refund(of: request.reference, transaction: accepted.transaction, amount: 50_000))
            else {
                Issue.record("refund not accepted")
                return
            }
            var report = try await gateway.query(reference: request.reference, partner: request.partner)
            #expect(report.status == .known(.succeeded))
            #expect(report.amountRefunded == .zero)
            try await sandbox.require(.post, "/refunds/\(refundID)/complete")
            report = try await gateway.query(reference: request.reference, partner: request.partner)
            #expect(report.status == .known(.succeeded))
            #expect(report.amountRefunded == Money(dong: 50_000))
        }
    }
}

/// The replies §4 allows that the sandbox never gives (a query's status is the payment's own, so
/// `05`, `06`, `09` appear only in refund replies and settlement rows there), and replies that are
/// signed but wrong, from a scripted signed gateway.
@Suite(.timeLimit(.minutes(3))) struct QueryReplyMappingTests {
    static let reference = PaymentReference(rawValue: "PI7Q2K9X4M1N0B3V5C8Z")!

    static func reply(status code: String, reference: String = reference.rawValue) -> String {
        #"{"MaLoi":"00","MoTaLoi":"Thanh cong","MaThamChieu":"\#(reference)","MaGiaoDich":"PG2305300000123","TrangThaiGD":"\#(code)","SoTien":150000,"SoTienDaHoan":50000,"MaNganHang":"VCB","ThoiGianGD":"20230530101500"}"#
    }

    func withScripted(_ body: (ScriptedGateway, PortalGatewayClient) async throws -> Void) async throws {
        let scripted = try await ScriptedGateway.start()
        let http = try CurlHTTPClient()
        let gateway = PortalGatewayClient(
            configuration: PortalConfiguration(baseURL: scripted.apiURL, partners: [SandboxPeer.partner: [Keys.partner]]),
            http: http, logger: .test("adapter"))
        do {
            try await body(scripted, gateway)
        } catch {
            await http.shutdown()
            await scripted.stop()
            throw error
        }
        await http.shutdown()
        await scripted.stop()
    }

    static let statuses: [(String, PaymentStatusReport.Status)] = [
        ("05", .refundInProgress), ("06", .refundInProgress), ("09", .refundRejected),
        ("00", .known(.succeeded)), ("01", .known(.pending)), ("02", .known(.failed(.declined))), ("04", .known(.failed(.reversed))),
        ("42", .unrecognized(code: "42")),
    ]

    @Test func everyStatusCodeMaps() async throws {
        try await withScripted { scripted, gateway in
            for (code, status) in Self.statuses {
                scripted.answer { $0.body = Self.reply(status: code) }
                let report = try await gateway.query(reference: Self.reference, partner: SandboxPeer.partner)
                #expect(report.status == status, "TrangThaiGD \(code)")
                #expect(report.amount == Money(dong: 150_000))
                #expect(report.amountRefunded == Money(dong: 50_000))
                #expect(report.bankCode == "VCB")
                #expect(report.occurredAt == VietnamTime(compact: "20230530101500"))
            }
        }
    }

    @Test func signedButWrongRepliesAreErrors() async throws {
        try await withScripted { scripted, gateway in
            func kind() async -> GatewayError.Kind? {
                await GatewayError.kind { try await gateway.query(reference: Self.reference, partner: SandboxPeer.partner) }
            }
            scripted.answer { $0.body = Self.reply(status: "00", reference: "PIOTHER") }
            #expect(await kind() == .malformedReply)
            scripted.answer { $0.body = Self.reply(status: "00").replacingOccurrences(of: "150000", with: "150000.0") }
            #expect(await kind() == .malformedReply)
            scripted.answer { $0.body = Self.reply(status: "00").replacingOccurrences(of: #""TrangThaiGD":"00","#, with: "") }
            #expect(await kind() == .malformedReply)
            scripted.answer {
                $0.status = 500
                $0.body = #"{"MaLoi":"99","MoTaLoi":"Loi khac"}"#
            }
            #expect(await kind() == .gatewayFailure)
            scripted.answer {
                $0.status = 200
                $0.body = Self.reply(status: "00")
                $0.partnerHeader = "HNI"
            }
            #expect(await kind() == .badReplySignature)
        }
    }
}
