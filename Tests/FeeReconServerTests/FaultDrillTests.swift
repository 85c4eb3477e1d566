import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import GatewaySandbox
import Postgres
import Signing
import TestSupport
import Testing

/// The callback drills: thousands of payments through the sandbox's seeded fault injection, and a
/// service process killed in the middle of a callback burst. In both, the service's final state
/// must equal the gateway's truth, nothing may be applied twice, every forged callback is refused
/// and every dropped one is healed. `FEERECON_DRILL_SIZE` sets the number of payments (default
/// 2,000; the crash drill uses a tenth of it, at least 200).
@Suite(.serialized) struct FaultDrillTests {
    static var size: Int {
        ProcessInfo.processInfo.environment["FEERECON_DRILL_SIZE"].flatMap(Int.init).map { max($0, 10) } ?? 2000
    }

    // MARK: Shared steps

    /// A seeded choice of outcomes: mostly successes, and every kind of failure.
    static func outcome(_ index: Int, seed: UInt64) -> String {
        var x = seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        switch x % 100 {
        case 0..<65: return "success"
        case 65..<75: return "cancel"
        case 75..<85: return "insufficient-funds"
        case 85..<95: return "expired"
        default: return "reversed"
        }
    }

    /// Runs `body` for 0..<count with at most `width` at a time.
    static func concurrently(_ count: Int, width: Int = 16, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(width, count) {
                let i = next
                group.addTask { try await body(i) }
                next += 1
            }
            while try await group.next() != nil {
                if next < count {
                    let i = next
                    group.addTask { try await body(i) }
                    next += 1
                }
            }
        }
    }

    static func dossierCode(_ i: Int) -> String {
        "000.00.15.H10-2305\(String(format: "%02d", 1 + i / 9999 % 28))-\(String(format: "%04d", 1 + i % 9999))"
    }

    /// Registers `count` dossiers and opens an intent for each; returns the gateway transaction ids in order.
    static func openIntents(
        count: Int, baseURL: String, http: CurlHTTPClient, apiKey: String
    ) async throws -> [String] {
        let transactions = Locked<[Int: String]>([:])
        try await concurrently(count) { i in
            let code = dossierCode(i)
            var headers = HTTPHeaders()
            headers.add(name: "authorization", value: "Bearer \(apiKey)")
            headers.add(name: "content-type", value: "application/json")
            let put = try await http.execute(HTTPClientRequest(
                method: .put, url: baseURL + "/v1/dossiers/\(code)", headers: headers,
                body: Fixtures.dossierBody(amounts: [Int64(10_000 + i % 7 * 1_000), 5_000])), timeout: .seconds(60))
            guard put.status == 201 || put.status == 200 else { throw TestSupportError("PUT dossier answered \(put.status)") }
            headers.add(name: "Idempotency-Key", value: "drill-\(i)")
            let post = try await http.execute(HTTPClientRequest(
                method: .post, url: baseURL + "/v1/dossiers/\(code)/payment-intents", headers: headers), timeout: .seconds(60))
            let intent = try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any]
            guard post.status == 201 || post.status == 200, intent?["status"] as? String == "pending",
                  let txn = intent?["gatewayTransaction"] as? String
            else { throw TestSupportError("intent \(i) not pending: \(post.status) \(String(decoding: post.body, as: UTF8.self))") }
            transactions.withLock { $0[i] = txn }
        }
        return (0..<count).map { transactions.value[$0]! }
    }

    struct Truth: Sendable {
        var reference: String
        var amount: Int64
        var status: String
    }

    static func truth(_ sandbox: RunningSandbox) async throws -> [String: Truth] {
        var result: [String: Truth] = [:]
        var after: String?
        for _ in 0..<100 {
            let query = "/truth?limit=5000" + (after.map { "&after=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" } ?? "")
            let page = try await sandbox.controlJSON(.get, query) as! [String: Any]
            for item in page["transactions"] as! [[String: Any]] {
                let reference = item["reference"] as! String
                result[reference] = Truth(reference: reference, amount: Int64(item["amount"] as! Int), status: item["status"] as! String)
            }
            guard let next = page["next"] as? String else { break }
            after = next
        }
        return result
    }

    struct Mismatch: CustomStringConvertible {
        var reference: String
        var truth: String
        var intent: String
        var description: String { "\(reference): gateway \(truth), service \(intent)" }
    }

    /// Every intent against the gateway's truth: a success is `succeeded` and its dossier paid
    /// exactly once; anything else is a failure kind and its dossier unpaid.
    static func compare(_ db: PostgresClient, _ truth: [String: Truth]) async throws -> [Mismatch] {
        let rows = try await db.query("""
            SELECT p.reference, p.status, p.amount, d.amount_paid, d.amount_due FROM payment_intents p JOIN dossiers d ON d.id = p.dossier_id
            """)
        var mismatches: [Mismatch] = []
        var seen = 0
        for row in rows {
            let (reference, status, amount, paid, due) = try row.decode((String, String, Int64, Int64, Int64).self)
            guard let t = truth[reference] else {
                mismatches.append(Mismatch(reference: reference, truth: "absent", intent: status))
                continue
            }
            seen += 1
            let ok: Bool = switch t.status {
            case "succeeded": status == "succeeded" && paid == due && amount == t.amount
            case "failed": ["failed", "cancelled", "expired"].contains(status) && paid == 0
            case "reversed": status == "failed" && paid == 0
            default: false
            }
            if !ok { mismatches.append(Mismatch(reference: reference, truth: t.status, intent: "\(status) paid \(paid)/\(due)")) }
        }
        if seen != truth.count { mismatches.append(Mismatch(reference: "*", truth: "\(truth.count) payments", intent: "\(seen) intents")) }
        return mismatches
    }

    /// No event of an outcome appears twice for one intent; no dossier is paid more than due.
    static func appliedOnce(_ db: PostgresClient) async throws {
        let doubled = try await db.query("""
            SELECT count(*) FROM (SELECT intent_id, kind FROM intent_events
                                  WHERE kind NOT IN ('flagged', 'manual_review_required')
                                  GROUP BY intent_id, kind HAVING count(*) > 1) x
            """)[0].decode(Int64.self)
        #expect(doubled == 0, "some intent changed twice by the same kind of event")
        let overpaid = try await db.query("SELECT count(*) FROM dossiers WHERE amount_paid > amount_due")[0].decode(Int64.self)
        #expect(overpaid == 0)
        let finals = try await db.query("""
            SELECT count(*) FROM (SELECT partner_code, webhook_id FROM inbound_messages WHERE is_final
                                  GROUP BY 1, 2 HAVING count(*) > 1) x
            """)[0].decode(Int64.self)
        #expect(finals == 0)
    }

    // MARK: The drill

    @Test func everyFaultAtOnce() async throws {
        let count = Self.size
        let seed: UInt64 = 20_261_201
        try await withSandboxAndService(sandbox: { s in
            s.seed = seed
            s.callbackIntervalMilliseconds = 300
            s.faults.duplicate = 0.15
            s.faults.duplicateAfterMilliseconds = 50
            s.faults.reorder = 0.10
            s.faults.reorderHoldMilliseconds = 400
            s.faults.delay = 0.10
            s.faults.delayMilliseconds = 800
            s.faults.drop = 0.08
            s.faults.tamperSignature = 0.10
            s.faults.misstatedCallback = 0.05
        }, settings: { s in
            s.workerInterval = .milliseconds(100)
            s.checkSchedule = CheckSchedule(offsets: [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32), .seconds(64)])
        }) { sandbox, service in
            let key = try await service.setUpAgencies()
            let transactions = try await Self.openIntents(count: count, baseURL: service.baseURL, http: service.http, apiKey: key)
            try await Self.concurrently(count) { i in
                _ = try await sandbox.controlJSON(
                    .post, "/transactions/\(transactions[i])/outcome", json: #"{"outcome":"\#(Self.outcome(i, seed: seed))"}"#)
            }
            let truth = try await Self.truth(sandbox)
            #expect(truth.count == count)
            #expect(truth.values.contains { $0.status == "succeeded" } && truth.values.contains { $0.status == "reversed" })

            var mismatches: [Mismatch] = []
            try await poll(until: {
                mismatches = try await Self.compare(service.db, truth)
                return mismatches.isEmpty
            }, deadline: .seconds(300), interval: .milliseconds(500), "service state equals the gateway's truth")
            #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
            try await Self.appliedOnce(service.db)

            // Every tampered attempt was refused; every dropped one was healed by a query.
            let callbacks = (try await sandbox.controlJSON(.get, "/callbacks?limit=100000") as! [String: Any])["callbacks"] as! [[String: Any]]
            var tampered = 0
            var dropped: [String] = []
            var duplicates = 0
            for callback in callbacks {
                let faults = callback["faults"] as? [String] ?? []
                if faults.contains("drop") { dropped.append(callback["reference"] as! String) }
                if callback["isDuplicate"] as? Bool == true { duplicates += 1 }
                var answers = Set<String>()
                for attempt in callback["attemptLog"] as? [[String: Any]] ?? [] {
                    if attempt["tampered"] as? Bool == true {
                        tampered += 1
                        #expect(attempt["httpStatus"] as? Int == 401, "a tampered callback was not refused")
                    } else if attempt["httpStatus"] as? Int == 200, let code = attempt["resultCode"] as? String {
                        answers.insert(code)
                    }
                }
                #expect(answers.count <= 1, "one webhook-id got different final answers: \(answers)")
            }
            #expect(tampered > 0 && !dropped.isEmpty && duplicates > 0, "the faults did not all strike")
            for reference in dropped {
                let sources = try await service.db.query("""
                    SELECT e.source FROM intent_events e JOIN payment_intents p ON p.id = e.intent_id
                    WHERE p.reference = \(reference) AND e.to_status <> e.from_status AND e.kind <> 'gateway_accepted'
                    """).map { try $0.decode(String.self) }
                #expect(!sources.isEmpty && sources.allSatisfy { $0 == "query" || $0 == "callback" })
            }
            let healedByQuery = try await service.db.query(
                "SELECT count(*) FROM intent_events WHERE source = 'query'")[0].decode(Int64.self)
            #expect(healedByQuery >= Int64(dropped.count) / 2)
            print("drill: \(count) payments, \(callbacks.count) callback events, \(tampered) tampered attempts, \(dropped.count) dropped, \(duplicates) duplicates, \(healedByQuery) query corrections")
        }
    }
}

extension FaultDrillTests {
    /// The service as a separate process, so that it can be killed.
    struct ServiceProcess {
        let process: ChildProcess
        let baseURL: String

        static func start(port: Int, database: TestDatabase, gatewayURL: String, secret: WebhookSecret) async throws -> ServiceProcess {
            var environment = ProcessInfo.processInfo.environment
            environment["FEERECON_DATABASE_URL"] = database.url
            environment["FEERECON_LISTEN"] = "127.0.0.1:\(port)"
            environment["FEERECON_PUBLIC_URL"] = "http://127.0.0.1:\(port)"
            environment["FEERECON_GATEWAY_URL"] = gatewayURL
            environment["FEERECON_PARTNERS"] = "BTH"
            environment["FEERECON_PARTNER_SECRETS_BTH"] = secret.exportedText
            environment["FEERECON_LOG_LEVEL"] = "error"
            let process = try ChildProcess(try FeeReconExecutable.url(), ["serve"], environment: environment)
            let service = ServiceProcess(process: process, baseURL: "http://127.0.0.1:\(port)")
            let http = try CurlHTTPClient()
            defer { Task { await http.shutdown() } }
            try await poll(until: {
                guard process.isRunning else { throw TestSupportError("feerecon serve exited: \(process.output)") }
                return (try? await http.execute(HTTPClientRequest(method: .get, url: service.baseURL + "/readyz")))?.status == 200
            }, deadline: .seconds(60), interval: .milliseconds(50), "feerecon serve ready")
            return service
        }
    }

    @Test func killedInTheMiddleOfACallbackBurst() async throws {
        let count = max(200, Self.size / 10)
        try await withSandboxAndService(sandbox: { s in
            s.callbackIntervalMilliseconds = 300
            s.faults.duplicate = 0.2
            s.faults.duplicateAfterMilliseconds = 20
        }, settings: { $0.runWorkers = false }) { sandbox, inProcess in
            // The in-process service only provides the database and the sandbox wiring; the
            // service under test is a child process on its own port, over the same database.
            let port = try freeLoopbackPort()
            let secret = inProcess.secret
            let key = try await inProcess.setUpAgencies()
            var child = try await ServiceProcess.start(port: port, database: inProcess.database, gatewayURL: sandbox.apiURL, secret: secret)
            let transactions = try await Self.openIntents(count: count, baseURL: child.baseURL, http: inProcess.http, apiKey: key)

            // The burst: every payment succeeds at once, and the service dies part way through.
            let burst = Task {
                try await Self.concurrently(count, width: 32) { i in
                    _ = try await sandbox.controlJSON(.post, "/transactions/\(transactions[i])/outcome", json: #"{"outcome":"success"}"#)
                }
            }
            let succeeded = { () async throws -> Int64 in
                try await inProcess.db.query("SELECT count(*) FROM payment_intents WHERE status = 'succeeded'")[0].decode(Int64.self)
            }
            try await poll(until: { try await succeeded() >= 10 }, deadline: .seconds(60), interval: .milliseconds(5), "callbacks flowing")
            child.process.send(SIGKILL)
            try await child.process.wait(deadline: .seconds(10))
            let atKill = try await succeeded()
            try await burst.value

            // While it is down the gateway's deliveries fail and are retried; then it comes back.
            child = try await ServiceProcess.start(port: port, database: inProcess.database, gatewayURL: sandbox.apiURL, secret: secret)
            let truth = try await Self.truth(sandbox)
            var mismatches: [Mismatch] = []
            try await poll(until: {
                mismatches = try await Self.compare(inProcess.db, truth)
                return mismatches.isEmpty
            }, deadline: .seconds(180), interval: .milliseconds(200), "service state equals the gateway's truth after the restart")
            #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
            #expect(atKill < Int64(count), "the kill came after the burst had finished")
            try await Self.appliedOnce(inProcess.db)

            // Acknowledged only after commit: every webhook-id the gateway saw answered 00/02 is stored.
            let callbacks = (try await sandbox.controlJSON(.get, "/callbacks?limit=100000") as! [String: Any])["callbacks"] as! [[String: Any]]
            let stored = Set(try await inProcess.db.query("SELECT webhook_id FROM inbound_messages WHERE is_final").map { try $0.decode(String.self) })
            var acknowledged = 0
            var failedDeliveries = 0
            for callback in callbacks {
                for attempt in callback["attemptLog"] as? [[String: Any]] ?? [] {
                    if attempt["httpStatus"] as? Int == 200, ["00", "02"].contains(attempt["resultCode"] as? String ?? "") {
                        acknowledged += 1
                        #expect(stored.contains(callback["webhookId"] as! String), "an acknowledged callback is not stored")
                    } else {
                        failedDeliveries += 1
                    }
                }
            }
            #expect(failedDeliveries > 0, "no delivery failed while the service was down")
            print("crash drill: \(count) payments, \(atKill) applied before the kill, \(failedDeliveries) failed deliveries retried, \(acknowledged) acknowledged")
            child.process.send(SIGKILL)
            try? await child.process.wait(deadline: .seconds(20))
        }
    }
}
