import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import Hummingbird
import Logging
import PortalGateway
import Postgres
import ServiceLifecycle
import Signing
import TestSupport
import Testing

/// A service under test: the real application on a loopback port over a fresh migrated
/// database, reached over real HTTP through libcurl.
struct RunningService: Sendable {
    let baseURL: String
    let database: TestDatabase
    let http: CurlHTTPClient
    let partner: PartnerCode
    let secret: WebhookSecret
    /// Signs the service's notifications to the one-stop system.
    let notifySecret: WebhookSecret

    var db: PostgresClient { database.client }

    func request(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8] = [], apiKey: String? = nil
    ) async throws -> HTTPClientResponse {
        var fields = HTTPHeaders(headers)
        if let apiKey { fields.add(name: "authorization", value: "Bearer \(apiKey)") }
        if !body.isEmpty && !fields.contains(name: "content-type") { fields.add(name: "content-type", value: "application/json") }
        return try await http.execute(HTTPClientRequest(method: method, url: baseURL + path, headers: fields, body: body), timeout: .seconds(30))
    }

    func json(_ response: HTTPClientResponse) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw TestSupportError("response body is not a JSON object")
        }
        return object
    }

    /// Signs and posts a callback body as the gateway would.
    func postCallback(
        _ body: [UInt8], id: String = WebhookSigner.newMessageID(), secret: WebhookSecret? = nil, partner: String? = nil,
        timestamp: Int64? = nil
    ) async throws -> HTTPClientResponse {
        let clock: UnixClock
        if let timestamp { clock = { timestamp } } else { clock = systemUnixClock }
        let signer = WebhookSigner(secret: secret ?? self.secret, clock: clock)
        let headers = signer.headers(for: body, id: id)
        var fields = HTTPHeaders()
        fields.add(contentsOf: headers.fields)
        fields.add(name: "x-partner-code", value: partner ?? self.partner.rawValue)
        fields.add(name: "content-type", value: "application/json")
        return try await http.execute(
            HTTPClientRequest(method: .post, url: baseURL + "/v1/callbacks/portal", headers: fields, body: body), timeout: .seconds(30))
    }
}

enum Fixtures {
    static let partner = PartnerCode(rawValue: "BTH")!
    static let agency = AgencyCode(rawValue: "000.00.15.H10")!
    static let otherAgency = AgencyCode(rawValue: "000.00.16.H10")!

    static func dossierBody(amounts: [Int64] = [100_000, 50_000], applicant: String = "Nguyễn Văn Ánh") -> [UInt8] {
        let lines = amounts.enumerated().map { index, amount in
            #"{"kind":"\#(index % 2 == 0 ? "charge" : "fee")","code":"L\#(index)","name":"Khoản \#(index)","amount":\#(amount)}"#
        }
        return Array(#"{"procedureCode":"1.001234","procedureName":"Cấp bản sao trích lục","applicantName":"\#(applicant)","feeLines":[\#(lines.joined(separator: ","))]}"#.utf8)
    }
}

/// Runs the application for the duration of `body`, with the given gateway, and stops it.
func withRunningService<Result: Sendable>(
    gateway makeGateway: @Sendable (CurlHTTPClient, [PartnerCode: [WebhookSecret]]) -> any PaymentGateway = { http, partners in
        PortalGatewayClient(
            configuration: PortalConfiguration(baseURL: "http://127.0.0.1:9/ppdvcqg/v1", partners: partners),
            http: http, logger: Logger(label: "test"))
    },
    settings adjust: @Sendable (inout AppSettings) -> Void = { _ in },
    secret: WebhookSecret = WebhookSecret.generate(),
    _ body: (RunningService) async throws -> Result
) async throws -> Result {
    let logger = Logger.test("service")
    let notifySecret = WebhookSecret.generate()
    let partners = [Fixtures.partner: [secret]]
    return try await withMigratedTestDatabase(logger: logger, maximumConnections: 8) { database in
        let http = try CurlHTTPClient(logger: logger)
        // A port chosen up front, so that the callback URL given to the gateway is known. Another
        // test may take it before the service binds it; then the service ends at once and a
        // fresh port is tried (three times at most).
        var attempt = 0
        var started: (port: Locked<Int?>, group: ServiceGroup, running: Task<Void, Never>)?
        while started == nil {
            attempt += 1
            let port = Locked<Int?>(nil)
            let ended = Locked<String?>(nil)
            let chosen = try freeLoopbackPort()
            var settings = AppSettings(host: "127.0.0.1", port: chosen, endpoints: PublicEndpoints(baseURL: "http://127.0.0.1:\(chosen)"))
            adjust(&settings)
            let dependencies = AppDependencies(
                database: database.client, gateway: makeGateway(http, partners), notifications: PortalNotifications(partners: partners),
                http: http, notificationSecrets: [notifySecret])
            let app = try await buildApplication(settings: settings, dependencies: dependencies, logger: logger) { bound in
                port.withLock { $0 = bound }
            }
            let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
            let running = Task {
                do {
                    try await group.run()
                    ended.withLock { $0 = "the service stopped" }
                } catch {
                    ended.withLock { $0 = "\(error)" }
                }
            }
            do {
                try await poll(until: { port.value != nil || ended.value != nil }, deadline: .seconds(20), "service listening")
            } catch {
                await group.triggerGracefulShutdown()
                running.cancel()
                await running.value
                await http.shutdown()
                throw error
            }
            if port.value != nil {
                started = (port, group, running)
            } else if attempt >= 3 {
                await http.shutdown()
                throw ServiceDidNotStart(reason: ended.value ?? "unknown")
            }
        }
        let (port, group, running) = started!
        defer { running.cancel() }
        do {
            let service = RunningService(
                baseURL: "http://127.0.0.1:\(port.value!)", database: database, http: http, partner: Fixtures.partner, secret: secret,
                notifySecret: notifySecret)
            let result = try await body(service)
            await group.triggerGracefulShutdown()
            await running.value
            await http.shutdown()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            await running.value
            await http.shutdown()
            throw error
        }
    }
}

extension RunningService {
    /// Registers the fixture agencies and returns an API key for `agencies` (default: the first).
    func setUpAgencies(keyFor agencies: [AgencyCode] = [Fixtures.agency]) async throws -> String {
        try await db.withTransaction { db in
            let first = try await DossierStore.upsertAgency(code: Fixtures.agency, name: "Sở Tư pháp", partner: partner, on: db)
            let second = try await DossierStore.upsertAgency(code: Fixtures.otherAgency, name: "Sở Xây dựng", partner: partner, on: db)
            let ids = agencies.map { $0 == Fixtures.agency ? first.id : second.id }
            return try await APIKeyStore.create(name: "test \(UUID())", agencyIDs: ids, on: db).plaintext
        }
    }

    /// A snapshot of every table's row count, to assert that a refused request changed nothing.
    func tableCounts() async throws -> [String: Int64] {
        try await db.withConnection { db in
            var counts: [String: Int64] = [:]
            for table in ["agencies", "dossiers", "dossier_fee_lines", "payment_intents", "intent_events", "inbound_messages",
                          "audit_log", "idempotency_keys", "exceptions"] {
                counts[table] = try await db.query("SELECT count(*) FROM \(identifier: table)")[0].decode(Int64.self)
            }
            return counts
        }
    }
}

/// The service did not start listening in three attempts; `reason` is how its last run ended.
struct ServiceDidNotStart: Error, CustomStringConvertible {
    var reason: String
    var description: String { "the service did not start listening: \(reason)" }
}
