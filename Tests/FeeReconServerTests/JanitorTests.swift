import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import GatewaySandbox
import Logging
import PortalGateway
import Postgres
import TestSupport
import Testing

/// Payments whose callback never came are found anyway: by the janitor's query schedule and by
/// the citizen's return page (repair on read).
@Suite struct JanitorTests {
    let code = "000.00.15.H10-230530-0001"

    static func fastJanitor(_ settings: inout AppSettings) {
        settings.workerInterval = .milliseconds(50)
        settings.checkSchedule = CheckSchedule(offsets: [.milliseconds(300), .milliseconds(600), .milliseconds(900)])
    }

    static func dropEveryCallback(_ settings: inout SandboxSettings) {
        settings.faults.drop = 1
    }

    /// Registers the fixture dossier and opens its intent; returns (API key, intent JSON).
    func openIntent(_ service: RunningService, serial: Int = 1) async throws -> (String, [String: Any]) {
        let key = try await service.setUpAgencies()
        let code = "000.00.15.H10-230530-\(String(format: "%04d", serial))"
        #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
        let response = try await service.request(
            .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "k\(serial)")], apiKey: key)
        let intent = try service.json(response)
        #expect(intent["status"] as? String == "pending")
        return (key, intent)
    }

    /// Commits an intent `created` for the fixture dossier (registered first) with its create
    /// request stored but not sent, as after a crash before the gateway call; returns the bytes.
    func insertUnsentIntent(
        _ service: RunningService, id: UUID, reference: String, firstCheck: Duration
    ) async throws -> [UInt8] {
        let key = try await service.setUpAgencies()
        #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
        return try await service.db.withTransaction { db in
            let dossier = try await DossierStore.dossier(code: DossierCode(rawValue: code)!, on: db)!
            let reference = PaymentReference(rawValue: reference)!
            let request = CreatePaymentRequest(
                partner: service.partner, reference: reference, amount: dossier.amountDue,
                requestedAt: VietnamTime(unixSeconds: Int64(Date().timeIntervalSince1970)), payerAddress: "127.0.0.1",
                description: "Thanh toan", returnURL: service.baseURL + "/pay/x/return", notifyURL: service.baseURL + "/v1/callbacks/portal",
                dossier: dossier.code, procedureCode: dossier.procedureCode, procedureName: dossier.procedureName,
                agencyCode: dossier.agency.code, agencyName: dossier.agency.name, applicantName: dossier.applicantName,
                feeLines: dossier.feeLines)
            let bytes = try PortalGatewayClientFactory.make(
                baseURL: "http://unused", partners: [service.partner: [service.secret]], http: service.http, timeout: .seconds(1)
            ).encodeCreate(request)
            _ = try await IntentStore.insert(
                id: id, partner: service.partner, reference: reference, dossierID: dossier.id, amount: dossier.amountDue,
                createRequest: bytes, source: .api, actor: nil, firstCheck: firstCheck, on: db)
            return bytes
        }
    }

    func status(_ service: RunningService, _ id: String) async throws -> String {
        try await service.db.query("SELECT status FROM payment_intents WHERE id = \(UUID(uuidString: id)!)")[0].decode(String.self)
    }

    @Test func droppedCallbackIsHealedByTheJanitor() async throws {
        try await withSandboxAndService(sandbox: Self.dropEveryCallback, settings: Self.fastJanitor) { sandbox, service in
            let (_, intent) = try await openIntent(service)
            let txn = try #require(intent["gatewayTransaction"] as? String)
            _ = try await sandbox.controlJSON(.post, "/transactions/\(txn)/outcome", json: #"{"outcome":"success"}"#)
            let id = intent["id"] as! String
            try await poll(until: { try await status(service, id) == "succeeded" }, deadline: .seconds(30), "janitor healed the intent")
            let events = try await service.db.query(
                "SELECT kind, source FROM intent_events WHERE intent_id = \(UUID(uuidString: id)!) ORDER BY id"
            ).map { try $0.decode((String, String).self) }
            #expect(events.last?.0 == "payment_succeeded")
            #expect(events.last?.1 == "query")
            #expect(try await service.db.query("SELECT count(*) FROM inbound_messages")[0].decode(Int64.self) == 0)
            #expect(try await service.db.query("SELECT status FROM dossiers")[0].decode(String.self) == "paid")
            #expect(try await service.db.query("SELECT count(*) FROM outbox_notifications")[0].decode(Int64.self) == 1)
        }
    }

    @Test func returnPageRepairsOnRead() async throws {
        // No janitor here: only the citizen's visit can find out.
        try await withSandboxAndService(sandbox: Self.dropEveryCallback, settings: { $0.runWorkers = false }) { sandbox, service in
            let (key, intent) = try await openIntent(service)
            let txn = try #require(intent["gatewayTransaction"] as? String)
            _ = try await sandbox.controlJSON(.post, "/transactions/\(txn)/outcome", json: #"{"outcome":"success"}"#)
            let dossier = try service.json(try await service.request(.get, "/v1/dossiers/\(code)", apiKey: key))
            let path = String((dossier["payLink"] as! String).dropFirst(service.baseURL.count))
            let page = String(decoding: try await service.request(.get, path + "/return").body, as: UTF8.self)
            #expect(page.contains("Đã thanh toán"))
            #expect(try await status(service, intent["id"] as! String) == "succeeded")
        }
    }

    @Test func unresolvedAfterTheScheduleNeedsAPerson() async throws {
        try await withSandboxAndService(settings: Self.fastJanitor) { sandbox, service in
            let (_, intent) = try await openIntent(service)
            let id = UUID(uuidString: intent["id"] as! String)!
            try await poll(until: {
                try await service.db.query("SELECT count(*) FROM intent_events WHERE intent_id = \(id) AND kind = 'manual_review_required'")[0]
                    .decode(Int64.self) == 1
            }, deadline: .seconds(30), "manual review required")
            let (status, reason, next) = try await service.db.query(
                "SELECT status, review_reason, next_check_at FROM payment_intents WHERE id = \(id)")[0].decode((String, String?, Date?).self)
            #expect(status == "pending")
            #expect(reason == "unresolved_after_queries")
            #expect(next == nil)
            #expect(try await service.db.query("SELECT count(*) FROM exceptions WHERE kind = 'unresolved_intent'")[0].decode(Int64.self) == 1)
            let checks = try await service.db.query("SELECT checks_done FROM payment_intents WHERE id = \(id)")[0].decode(Int16.self)
            #expect(checks >= 3)
        }
    }

    @Test func anIntentTheGatewayNeverSawIsSentAgain() async throws {
        try await withSandboxAndService(settings: Self.fastJanitor) { sandbox, service in
            // As after a crash between committing `created` and calling the gateway: the stored
            // create request was never sent.
            let id = UUID()
            _ = try await insertUnsentIntent(service, id: id, reference: "PINEVERSENT000000001", firstCheck: .milliseconds(100))
            try await poll(until: { try await status(service, id.uuidString) == "pending" }, deadline: .seconds(30), "create resent")
            let kinds = try await service.db.query("SELECT kind FROM intent_events WHERE intent_id = \(id) ORDER BY id").map { try $0.decode(String.self) }
            #expect(kinds == ["created", "gateway_accepted"])
        }
    }

    /// The create reached the gateway but its reply was lost (the intent stayed `created`): the
    /// query says pending, and the intent must end pending *with* its checkout URL — the stored
    /// create is sent again, and the gateway answers it with the original reply.
    @Test func aLostCreateReplyIsRecoveredWithItsCheckoutURL() async throws {
        try await withSandboxAndService(settings: Self.fastJanitor) { sandbox, service in
            let gateway = PortalGatewayClient(
                configuration: PortalConfiguration(baseURL: sandbox.apiURL, partners: [service.partner: [service.secret]]),
                http: service.http, logger: Logger.test("gateway"))
            let id = UUID()
            let bytes = try await insertUnsentIntent(service, id: id, reference: "PILOSTREPLY000000001", firstCheck: .seconds(1))
            // The create reaches the gateway; the service never hears the reply.
            guard case .accepted(let txn, let url, _) = try await gateway.create(encoded: bytes, partner: service.partner) else {
                Issue.record("the sandbox refused the create")
                return
            }
            try await poll(until: { try await status(service, id.uuidString) == "pending" }, deadline: .seconds(30), "intent recovered")
            let (storedTxn, storedURL) = try await service.db.query(
                "SELECT gateway_txn, checkout_url FROM payment_intents WHERE id = \(id)")[0].decode((String?, String?).self)
            #expect(storedTxn == txn && storedURL == url)
            let events = try await service.db.query("SELECT kind, source FROM intent_events WHERE intent_id = \(id) ORDER BY id")
                .map { try $0.decode((String, String).self) }
            #expect(events.map(\.0) == ["created", "gateway_accepted"])
            #expect(events.last?.1 == "gateway_reply")
        }
    }

    @Test func replicasDoNotDoTheSameWorkTwice() async throws {
        try await withSandboxAndService(sandbox: Self.dropEveryCallback, settings: { $0.runWorkers = false }) { sandbox, service in
            var ids: [String] = []
            for serial in 1...12 {
                let (_, intent) = try await openIntent(service, serial: serial)
                ids.append(intent["id"] as! String)
                _ = try await sandbox.controlJSON(.post, "/transactions/\(intent["gatewayTransaction"] as! String)/outcome", json: #"{"outcome":"success"}"#)
            }
            try await service.db.execute("UPDATE payment_intents SET next_check_at = now() - interval '1 second'")
            _ = try await sandbox.control(.delete, "/stats")
            // Three janitors, as on three replicas, sharing one database.
            let payments = PaymentService(
                database: service.db, gateway: PortalGatewayClientFactory.make(
                    baseURL: sandbox.apiURL, partners: [service.partner: [service.secret]], http: service.http, timeout: .seconds(10)),
                endpoints: PublicEndpoints(baseURL: service.baseURL), clock: { Int64(Date().timeIntervalSince1970) }, paymentWindow: nil,
                logger: .test("janitor"))
            let janitors = (0..<3).map { _ in
                Janitor(database: service.db, payments: payments, schedule: .standard, batchSize: 2, logger: .test("janitor"))
            }
            let claimed = try await withThrowingTaskGroup(of: Int.self) { group in
                for janitor in janitors {
                    group.addTask {
                        var total = 0
                        for _ in 0..<20 {
                            let n = try await janitor.runOnce()
                            total += n
                            if n == 0 { break }
                        }
                        return total
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(claimed == 12)
            for id in ids { #expect(try await status(service, id) == "succeeded") }
            let stats = try await sandbox.controlJSON(.get, "/stats") as? [String: Any]
            let queries = (((stats?["endpoints"] as? [String: Any])?["query"] as? [String: Any])?["requests"] as? Int)
                ?? ((stats?["query"] as? [String: Any])?["requests"] as? Int)
            #expect(queries == 12, "the gateway was asked \(String(describing: queries)) times for 12 intents: \(String(describing: stats))")
            #expect(try await service.db.query("SELECT count(*) FROM intent_events WHERE kind = 'payment_succeeded'")[0].decode(Int64.self) == 12)
        }
    }
}
