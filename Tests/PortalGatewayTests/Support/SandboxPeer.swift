import CurlHTTP
import FeeReconCore
import Foundation
import GatewaySandbox
import Logging
import PortalGateway
import Signing
import TestSupport

/// Keys generated once per test process; none is ever written anywhere.
enum Keys {
    /// The partner's key as both sides know it.
    static let partner = WebhookSecret.generate()
    /// A key the sandbox does not know for the partner.
    static let stranger = WebhookSecret.generate()
    /// The partner's next key during a rotation.
    static let next = WebhookSecret.generate()
}

/// The gateway sandbox, started in-process on port 0 over its own fresh database, and portal
/// adapters pointed at it over loopback HTTP.
struct SandboxPeer: Sendable {
    static let partner = PartnerCode(rawValue: "BTH")!

    let port: Int
    let http: CurlHTTPClient

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var apiURL: String { baseURL + "/ppdvcqg/v1" }

    /// An adapter that signs with the first of `secrets` and verifies replies with any of them.
    func adapter(
        secrets: [WebhookSecret] = [Keys.partner], partner: PartnerCode = SandboxPeer.partner,
        requestTimeout: Duration = .seconds(10), clock: @escaping UnixClock = systemUnixClock
    ) -> PortalGatewayClient {
        PortalGatewayClient(
            configuration: PortalConfiguration(baseURL: apiURL, partners: [partner: secrets], requestTimeout: requestTimeout),
            http: http, clock: clock, logger: .test("adapter"))
    }

    // MARK: Control API

    @discardableResult
    func control(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> (status: Int, json: [String: Any], body: [UInt8]) {
        var headers = HTTPHeaders()
        if json != nil { headers.add(name: "content-type", value: "application/json") }
        let response = try await http.execute(
            HTTPClientRequest(method: method, url: baseURL + "/sandbox" + path, headers: headers, body: Array((json ?? "").utf8)),
            timeout: .seconds(30))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, object, response.body)
    }

    /// Requires the control call to succeed.
    @discardableResult
    func require(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> [String: Any] {
        let reply = try await control(method, path, json: json)
        guard (200..<300).contains(reply.status) else {
            throw TestSupportError("sandbox \(path) answered \(reply.status): \(String(decoding: reply.body, as: UTF8.self))")
        }
        return reply.json
    }

    /// Decides a pending payment through the control API, optionally at a given Vietnam time.
    func outcome(_ transaction: String, _ outcome: String, at: String? = nil) async throws {
        let atField = at.map { #","at":"\#($0)""# } ?? ""
        try await require(.post, "/transactions/\(transaction)/outcome", json: #"{"outcome":"\#(outcome)"\#(atField)}"#)
    }

    /// Presses a button of the hosted payment page (§2), as the payer's browser would, and returns
    /// where the browser is sent next.
    func pay(checkoutURL: String, code: String) async throws -> String {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
        let response = try await http.execute(
            HTTPClientRequest(method: .post, url: checkoutURL, headers: headers, body: Array("KetQua=\(code)".utf8)),
            timeout: .seconds(30))
        guard response.status == 303, let location = response.headers["location"] else {
            throw TestSupportError("payment page answered \(response.status)")
        }
        return location
    }

    /// The settlement file exactly as the sandbox builds it (control API: unsigned, no window).
    func settlementBytes(_ day: String, partner: String = SandboxPeer.partner.rawValue) async throws -> [UInt8] {
        let reply = try await control(.get, "/settlement/\(partner)/\(day)")
        guard reply.status == 200 else { throw TestSupportError("settlement control answered \(reply.status)") }
        return reply.body
    }

    /// The sandbox's true payments of `reference` (none, or one).
    func truth(reference: PaymentReference) async throws -> [[String: Any]] {
        try await require(.get, "/truth?partner=\(SandboxPeer.partner.rawValue)&reference=\(reference.rawValue)")["transactions"]
            as? [[String: Any]] ?? []
    }

    /// Callback rows of one payment, with their delivery state.
    func callbacks(transaction: String) async throws -> [[String: Any]] {
        try await require(.get, "/callbacks?transaction=\(transaction)")["callbacks"] as? [[String: Any]] ?? []
    }
}

/// A sandbox started for the tests, and how to stop it.
struct StartedSandbox: Sendable {
    let peer: SandboxPeer
    let database: TestDatabase
    let task: Task<Void, any Error>

    /// Starts a sandbox on a fresh database, whose partner `BTH` holds `keys` (the first signs its
    /// replies), with the tests' settings adjusted by `configure`.
    static func start(
        keys: [WebhookSecret] = [Keys.partner], settings configure: (inout SandboxSettings) -> Void = { _ in }
    ) async throws -> StartedSandbox {
        var settings = SandboxSettings()
        settings.settlementWindow = false
        settings.callbackIntervalMilliseconds = 200
        settings.callbackTimeoutMilliseconds = 5_000
        settings.refundMode = .manual
        configure(&settings)
        let database = try await TestDatabase.create()
        var configuration = SandboxConfiguration(
            database: database.configuration, partners: [SandboxPartner(code: SandboxPeer.partner.rawValue, secrets: keys)])
        configuration.port = 0
        configuration.settings = settings
        configuration.workerPollMilliseconds = 50
        var logger = Logger.test("sandbox")
        logger.logLevel = ProcessInfo.processInfo.environment["FEERECON_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        configuration.logger = logger
        let bound = Locked<Int?>(nil)
        let task: Task<Void, any Error>
        do {
            let app = try await buildSandboxApplication(configuration: configuration) { port in bound.withLock { $0 = port } }
            task = Task { try await app.run() }
        } catch {
            try? await database.drop()
            throw error
        }
        do {
            try await poll(until: { bound.value != nil }, deadline: .seconds(30), "sandbox listening")
            let peer = SandboxPeer(port: bound.value!, http: try CurlHTTPClient())
            return StartedSandbox(peer: peer, database: database, task: task)
        } catch {
            task.cancel()
            _ = try? await task.value
            try? await database.drop()
            throw error
        }
    }

    func stop() async {
        await peer.http.shutdown()
        task.cancel()
        _ = try? await task.value
        try? await database.drop()
    }
}

/// Runs `body` with a sandbox of its own (for tests that change its keys or settings, or that
/// build a settlement day), and stops it and drops its database afterwards.
func withSandbox(
    sandboxKeys: [WebhookSecret] = [Keys.partner],
    settings configure: (inout SandboxSettings) -> Void = { _ in },
    _ body: (SandboxPeer) async throws -> Void
) async throws {
    let sandbox = try await StartedSandbox.start(keys: sandboxKeys, settings: configure)
    do {
        try await body(sandbox.peer)
    } catch {
        await sandbox.stop()
        throw error
    }
    await sandbox.stop()
}

/// One sandbox with the tests' default settings, started on first use and shared by every test
/// that leaves its keys and settings alone and uses references of its own — so that the suite
/// does not start (and create a database for) a gateway per test. It runs until the test process
/// ends; its database goes with the throwaway cluster.
actor SharedSandbox {
    static let shared = SharedSandbox()
    private var starting: Task<StartedSandbox, any Error>?

    func peer() async throws -> SandboxPeer {
        if let starting { return try await starting.value.peer }
        let task = Task { try await StartedSandbox.start() }
        starting = task
        return try await task.value.peer
    }
}

/// Runs `body` with the shared sandbox (see `SharedSandbox`).
func withSharedSandbox(_ body: (SandboxPeer) async throws -> Void) async throws {
    try await body(try await SharedSandbox.shared.peer())
}

/// Domain requests for the adapter, with values a test may change.
enum Requests {
    static let dossier = DossierCode(rawValue: "000.00.15.H10-230530-0001")!

    static var now: VietnamTime { VietnamTime(unixSeconds: Int64(Date().timeIntervalSince1970)) }

    static func reference() -> PaymentReference {
        var generator = SystemRandomNumberGenerator()
        return PaymentReference.random(using: &generator)
    }

    static func requestID() -> RefundRequestID {
        var generator = SystemRandomNumberGenerator()
        return RefundRequestID.random(using: &generator)
    }

    /// 150 000 đồng: a 100 000 lệ phí line and a 50 000 phí line.
    static let lines = [
        FeeLine(kind: .charge, code: "LP01", name: "Lệ phí", amount: Money(dong: 100_000)),
        FeeLine(kind: .fee, code: "PH01", name: "Phí", amount: Money(dong: 50_000)),
    ]

    static func payment(
        reference: PaymentReference = reference(), amount: Int64? = nil, lines: [FeeLine] = Requests.lines,
        applicant: String = "Nguyễn Văn A", procedureName: String = "Cấp bản sao trích lục", description: String? = nil,
        payerAddress: String = "203.0.113.7", notifyURL: String = "http://127.0.0.1:9/callbacks",
        requestedAt: VietnamTime = Requests.now, expiresAt: VietnamTime? = nil, dossier: DossierCode = Requests.dossier
    ) -> CreatePaymentRequest {
        CreatePaymentRequest(
            partner: SandboxPeer.partner, reference: reference,
            amount: Money(dong: amount ?? lines.reduce(0) { $0 + $1.amount.dong }), requestedAt: requestedAt,
            expiresAt: expiresAt, payerAddress: payerAddress,
            description: description ?? "Thanh toan le phi ho so \(dossier.rawValue)",
            returnURL: "https://service.example/pay/return", notifyURL: notifyURL, dossier: dossier,
            procedureCode: "1.001234", procedureName: procedureName, agencyCode: dossier.agency, agencyName: "Sở Tư pháp",
            applicantName: applicant, feeLines: lines)
    }

    static func refund(
        of reference: PaymentReference, transaction: String, amount: Int64, isFull: Bool = false,
        requestID: RefundRequestID = requestID(), reason: String = "Nộp trùng"
    ) -> RefundRequest {
        RefundRequest(
            partner: SandboxPeer.partner, requestID: requestID, reference: reference, gatewayTransaction: transaction,
            isFull: isFull, amount: Money(dong: amount), requestedBy: "officer-7", reason: reason, requestedAt: now)
    }
}

extension PortalGatewayClient {
    /// Creates a payment and returns what the gateway accepted, or throws.
    func open(_ request: CreatePaymentRequest) async throws -> (transaction: String, checkoutURL: String, expiresAt: VietnamTime) {
        let result = try await create(encoded: try encodeCreate(request), partner: request.partner)
        guard case .accepted(let transaction, let url, let deadline) = result else {
            throw TestSupportError("create was not accepted: \(result)")
        }
        return (transaction, url, deadline)
    }
}

extension GatewayError {
    /// Runs `body` and returns the `GatewayError` it threw, or nil if it threw nothing (or
    /// something else), for `#expect(... == .timeout)`.
    static func kind<T>(of body: () async throws -> T) async -> GatewayError.Kind? {
        do {
            _ = try await body()
            return nil
        } catch let error as GatewayError {
            return error.kind
        } catch {
            return nil
        }
    }
}
