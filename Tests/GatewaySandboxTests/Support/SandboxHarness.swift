import Cryptography
import CurlHTTP
import Foundation
@testable import GatewaySandbox
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle
import Signing
import Synchronization
import TestSupport
import Testing

/// Test-only keys, generated per process: a partner's current key, its previous key (still
/// accepted during a rotation), and a stranger's key.
enum TestKeys {
    static let current = WebhookSecret.generate()
    static let previous = WebhookSecret.generate()
    static let stranger = WebhookSecret.generate()
    static let otherPartner = WebhookSecret.generate()
}

/// A reply as the independent test client saw it: status, headers, body, and whether its
/// signature verified under the partner's current key.
struct SignedReply: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var verification: Result<VerifiedWebhook, WebhookVerificationError>

    var isSigned: Bool { if case .success = verification { true } else { false } }
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
    var code: String? { json["MaLoi"] as? String }
    subscript(_ key: String) -> Any? { json[key] }
    func string(_ key: String) -> String? { json[key] as? String }
    func int(_ key: String) -> Int64? { (json[key] as? NSNumber)?.int64Value }
}

/// A running sandbox on a fresh database, with an independent protocol client (CurlHTTP and
/// Signing only) and control API helpers. `withSandbox` starts and stops it.
final class SandboxHarness: Sendable {
    static let partner = "BTH"
    static let secondPartner = "HNI"

    let database: TestDatabase
    let port: Int
    let http: CurlHTTPClient
    private let task: Task<Void, any Error>
    private let signer = WebhookSigner(secret: TestKeys.current)
    private let verifier = WebhookVerifier(secret: TestKeys.current)

    var base: String { "http://127.0.0.1:\(port)" }

    private init(database: TestDatabase, port: Int, http: CurlHTTPClient, task: Task<Void, any Error>) {
        self.database = database
        self.port = port
        self.http = http
        self.task = task
    }

    static func start(
        settings: SandboxSettings = SandboxSettings(), database: TestDatabase? = nil,
        configure: (inout SandboxConfiguration) -> Void = { _ in }
    ) async throws -> SandboxHarness {
        let database = if let database { database } else { try await TestDatabase.create() }
        var configuration = SandboxConfiguration(
            database: database.configuration,
            partners: [
                SandboxPartner(code: partner, secrets: [TestKeys.current, TestKeys.previous]),
                SandboxPartner(code: secondPartner, secrets: [TestKeys.otherPartner]),
            ])
        configuration.port = 0
        configuration.settings = settings
        configuration.workerPollMilliseconds = 50
        configuration.database.pool.maximumConnections = 4
        var logger = Logger.test("sandbox")
        logger.logLevel = ProcessInfo.processInfo.environment["FEERECON_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        configuration.logger = logger
        configure(&configuration)
        let bound = Locked<Int?>(nil)
        let app = try await buildSandboxApplication(configuration: configuration) { port in
            bound.withLock { $0 = port }
        }
        let task = Task { try await app.run() }
        do {
            try await poll(until: { bound.value != nil }, deadline: .seconds(30), "sandbox listening")
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
        return SandboxHarness(database: database, port: bound.value!, http: try CurlHTTPClient(), task: task)
    }

    func stop(dropDatabase: Bool = true) async {
        task.cancel()
        _ = try? await task.value
        await http.shutdown()
        if dropDatabase { try? await database.drop() }
    }

    // MARK: Protocol client

    /// Sends a signed request. Each knob breaks one part of the signing, for rejection tests.
    func send(
        _ method: HTTPMethod = .post, _ path: String, body: [UInt8] = [], id: String? = nil,
        timestamp: Int64? = nil, secret: WebhookSecret = TestKeys.current, partner: String? = SandboxHarness.partner,
        signature: String? = nil, omit: Set<String> = [], extraHeaders: [(String, String)] = []
    ) async throws -> SignedReply {
        let id = id ?? "req_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let timestamp = timestamp ?? Int64(Date().timeIntervalSince1970)
        let signed = Self.rawSignature(secret: secret, id: id, timestamp: timestamp, body: body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        if !omit.contains("webhook-id") { headers.add(name: "webhook-id", value: id) }
        if !omit.contains("webhook-timestamp") { headers.add(name: "webhook-timestamp", value: String(timestamp)) }
        if !omit.contains("webhook-signature") { headers.add(name: "webhook-signature", value: signature ?? signed) }
        if let partner { headers.add(name: "x-partner-code", value: partner) }
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        return try await raw(method, path, body: body, headers: headers)
    }

    /// `v1,` + HMAC-SHA256 computed here, so even ids the signer would refuse can be signed.
    static func rawSignature(secret: WebhookSecret, id: String, timestamp: Int64, body: [UInt8]) -> String {
        let key = Base64.decode(secret.exportedText.dropFirst(6))!
        let mac = HMACSHA256.authenticationCode(key: key, message: Array("\(id).\(timestamp).".utf8) + body)
        return "v1," + Base64.encode(mac)
    }

    /// Sends exactly these headers, then verifies the reply with the current key.
    func raw(_ method: HTTPMethod, _ path: String, body: [UInt8], headers: HTTPHeaders) async throws -> SignedReply {
        let response = try await http.execute(HTTPClientRequest(method: method, url: base + path, headers: headers, body: body))
        let verification = Result { () throws(WebhookVerificationError) -> VerifiedWebhook in
            try verifier.verify(headers: { response.headers[$0] }, body: response.body, maxBodySize: 64 << 20)
        }
        return SignedReply(status: response.status, headers: response.headers, body: response.body, verification: verification)
    }

    func create(_ request: CreateBody, id: String? = nil) async throws -> SignedReply {
        try await send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: request.bytes, id: id)
    }

    func query(_ reference: String, partner: String = SandboxHarness.partner, id: String? = nil) async throws -> SignedReply {
        let body = #"{"LoaiBanTin":"TRACUU","MaDoiTac":"\#(partner)","MaThamChieu":"\#(reference)","ThoiGianGD":"\#(WireClock.now())"}"#
        return try await send(.post, "/ppdvcqg/v1/giao-dich/tra-cuu", body: Array(body.utf8), id: id)
    }

    func refund(_ body: RefundBody, id: String? = nil) async throws -> SignedReply {
        try await send(.post, "/ppdvcqg/v1/giao-dich/hoan-tien", body: body.bytes, id: id)
    }

    func settlement(_ day: String, id: String? = nil) async throws -> SignedReply {
        try await send(.get, "/ppdvcqg/v1/doi-soat/" + day, id: id)
    }

    /// Creates a payment and returns its `MaGiaoDich`.
    func createPaid(_ request: CreateBody) async throws -> String {
        let reply = try await create(request)
        guard reply.status == 200, let id = reply.string("MaGiaoDich") else {
            throw TestSupportError("create failed: \(reply.status) \(reply.text)")
        }
        return id
    }

    // MARK: Control API

    @discardableResult
    func control(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> (status: Int, json: [String: Any], body: [UInt8]) {
        var headers = HTTPHeaders()
        if json != nil { headers.add(name: "Content-Type", value: "application/json") }
        let response = try await http.execute(
            HTTPClientRequest(method: method, url: base + "/sandbox" + path, headers: headers, body: Array((json ?? "").utf8)))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, object, response.body)
    }

    /// Chooses an outcome through the control API and checks it was applied.
    func choose(_ transactionID: String, _ outcome: String, at: String? = nil) async throws {
        let atField = at.map { #","at":"\#($0)""# } ?? ""
        let result = try await control(.post, "/transactions/\(transactionID)/outcome", json: #"{"outcome":"\#(outcome)"\#(atField)}"#)
        guard result.status == 200 else { throw TestSupportError("outcome \(outcome) refused: \(result.status)") }
    }

    func truth(_ transactionID: String) async throws -> [String: Any] {
        try await control(.get, "/transactions/\(transactionID)").json
    }

    /// Callback rows (with attempt logs) of one payment.
    func callbacks(transaction: String) async throws -> [[String: Any]] {
        try await control(.get, "/callbacks?transaction=\(transaction)").json["callbacks"] as? [[String: Any]] ?? []
    }

    /// Polls the callback list of a payment until `condition` holds on it.
    @discardableResult
    func waitForCallbacks(
        transaction: String, deadline: Duration = .seconds(20), _ what: String = "callbacks",
        _ condition: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        var last: [[String: Any]] = []
        try await poll(until: {
            last = try await self.callbacks(transaction: transaction)
            return condition(last)
        }, deadline: deadline, interval: .milliseconds(25), what)
        return last
    }
}



/// Runs `body` with a fresh sandbox and stops it (and drops its database) afterwards.
func withSandbox(
    settings: SandboxSettings = SandboxSettings(),
    configure: (inout SandboxConfiguration) -> Void = { _ in },
    _ body: (SandboxHarness) async throws -> Void
) async throws {
    let harness = try await SandboxHarness.start(settings: settings, configure: configure)
    do {
        try await body(harness)
    } catch {
        await harness.stop()
        throw error
    }
    await harness.stop()
}

/// Vietnam wall-clock strings for request bodies.
enum WireClock {
    static func now(offset seconds: Int64 = 0) -> String {
        WireTime.format(unixSeconds: Int64(Date().timeIntervalSince1970) + seconds)
    }

    static var today: String { String(now().prefix(8)) }
}

/// A §1 create body, built field by field so a test can change or drop one.
struct CreateBody: Sendable {
    var fields: [(String, String)]

    /// A valid request: 150 000 đồng in two lines, a callback URL the test chooses.
    init(
        reference: String = CreateBody.newReference(), amount: Int64 = 150_000, lines: [(kind: String, amount: Int64)]? = nil,
        notifyURL: String = "http://127.0.0.1:9/callbacks", returnURL: String = "https://service.example/pay/return",
        payer: String = "Nguyen Van A", requestedAt: String = WireClock.now(), deadline: String? = nil,
        dossier: String = "000.00.15.H10-230530-0001", partner: String = SandboxHarness.partner
    ) {
        let lines = lines ?? [("2", amount - amount / 3), ("1", amount / 3)]
        let lineJSON = lines.enumerated().map { i, line in
            #"{"LoaiPhiLePhi":"\#(line.kind)","MaPhiLePhi":"L\#(i)","TenPhiLePhi":"\#(line.kind == "1" ? "Phi" : "Le phi") \#(i)","SoTien":\#(line.amount)}"#
        }.joined(separator: ",")
        fields = [
            ("LoaiBanTin", #""KHOITAO""#), ("PhienBan", #""1.0""#), ("MaDoiTac", "\"\(partner)\""),
            ("MaThamChieu", "\"\(reference)\""), ("SoTien", String(amount)), ("MaTienTe", #""VND""#),
            ("NgonNgu", #""vi""#), ("ThoiGianGD", "\"\(requestedAt)\""), ("Ip", #""203.0.113.7""#),
            ("ThongTinGiaoDich", "\"Thanh toan le phi ho so \(dossier)\""),
            ("UrlTraVe", "\"\(returnURL)\""), ("UrlThongBao", "\"\(notifyURL)\""),
            ("ThongTinBienLai", #"{"MaHoSo":"\#(dossier)","MaTTHC":"1.001234","TenTTHC":"Cap ban sao trich luc","MaDonVi":"000.00.15.H10","TenDonVi":"So Tu phap","HoTenNguoiNop":\#(Self.quote(payer)),"PhiLePhi":[\#(lineJSON)]}"#),
        ]
        if let deadline { fields.append(("HanThanhToan", "\"\(deadline)\"")) }
    }

    var reference: String {
        fields.first { $0.0 == "MaThamChieu" }!.1.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    func setting(_ name: String, raw value: String?) -> CreateBody {
        var copy = self
        if let index = copy.fields.firstIndex(where: { $0.0 == name }) {
            if let value { copy.fields[index].1 = value } else { copy.fields.remove(at: index) }
        } else if let value {
            copy.fields.append((name, value))
        }
        return copy
    }

    var bytes: [UInt8] { Array(("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}").utf8) }

    static func quote(_ text: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func newReference() -> String {
        "T" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(19))
    }
}

/// A §5 refund body.
struct RefundBody: Sendable {
    var requestID = "RF" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20))
    var reference: String
    var transactionID: String
    var kind = "03"
    var amount: Int64
    var partner = SandboxHarness.partner
    /// Fixed when the body is made: a retry resends the same body, `ThoiGianGD` included.
    var requestedAt = WireClock.now()

    var bytes: [UInt8] {
        Array(#"{"LoaiBanTin":"HOANTIEN","MaDoiTac":"\#(partner)","MaYeuCau":"\#(requestID)","MaThamChieu":"\#(reference)","MaGiaoDich":"\#(transactionID)","LoaiHoanTien":"\#(kind)","SoTienHoan":\#(amount),"NguoiTao":"officer-7","LyDo":"Nop trung","ThoiGianGD":"\#(requestedAt)"}"#.utf8)
    }
}
