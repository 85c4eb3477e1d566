import Foundation
import GatewaySandbox
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Signing
import TestSupport

/// One callback delivery as the loopback receiver saw it.
struct ReceivedCallback: Sendable {
    var id: String?
    var timestamp: String?
    var signature: String?
    var partner: String?
    var body: [UInt8]
    /// Whether the signature verified under the partner's current key.
    var verified: Bool
    var receivedAt: Date

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
    var code: String? { json["MaLoi"] as? String }
    var attempt: Int64? { (json["LanGui"] as? NSNumber)?.int64Value }
    var amount: Int64? { (json["SoTien"] as? NSNumber)?.int64Value }
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body with `"LanGui":n}` cut off, to check retries differ only there.
    var bodyWithoutAttempt: String {
        guard let range = text.range(of: #","LanGui":"#, options: .backwards) else { return text }
        return String(text[..<range.lowerBound])
    }
}

/// How the receiver answers one delivery.
enum ReceiverReply: Sendable {
    /// Signed HTTP 200 with this `MaLoi`.
    case signed(String)
    /// Signed, with this HTTP status and `MaLoi`.
    case signedStatus(Int, String)
    /// HTTP 200 `{"MaLoi":"00"}` without signature headers.
    case unsigned
    /// Answers only after this long (to exceed the sandbox's attempt timeout).
    case slow(Duration)
}

/// A loopback HTTP server standing in for the service's callback endpoint: it verifies each
/// delivery with the partner's key, records it, and answers from a script (then like a real
/// receiver: `00` for a new `webhook-id`, `02` for one seen before, `97` for a bad signature).
final class CallbackReceiver: Sendable {
    let received = Locked<[ReceivedCallback]>([])
    private let script = Locked<[ReceiverReply]>([])
    private let seen = Locked<Set<String>>([])
    private let boundPort = Locked<Int?>(nil)
    private let task = Locked<Task<Void, any Error>?>(nil)

    var port: Int { boundPort.value ?? 0 }
    var url: String { "http://127.0.0.1:\(port)/callbacks" }

    /// Replies to use, in order, before the default behaviour resumes.
    func script(_ replies: [ReceiverReply]) {
        script.withLock { $0 = replies }
    }

    var deliveries: [ReceivedCallback] { received.value }

    static func start() async throws -> CallbackReceiver {
        let receiver = CallbackReceiver()
        let router = Router()
        router.post("callbacks") { request, _ -> Response in
            var request = request
            let body = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
            return await receiver.handle(request, body: body)
        }
        var logger = Logger(label: "callback-receiver")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in receiver.boundPort.withLock { $0 = channel.localAddress?.port } },
            logger: logger)
        receiver.task.withLock { $0 = Task { try await app.run() } }
        try await poll(until: { receiver.boundPort.value != nil }, deadline: .seconds(30), "callback receiver listening")
        return receiver
    }

    func stop() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        _ = try? await task?.value
    }

    private func handle(_ request: Request, body: [UInt8]) async -> Response {
        func header(_ name: String) -> String? { request.headers[HTTPField.Name(name)!] }
        let verified = (try? WebhookVerifier(secret: TestKeys.current).verify(
            id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"),
            body: body)) != nil
        received.withLock {
            $0.append(ReceivedCallback(
                id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"),
                partner: header("x-partner-code"), body: body, verified: verified, receivedAt: Date()))
        }
        let scripted = script.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        switch scripted {
        case .signed(let code)?: return Self.signed(status: 200, code: code)
        case .signedStatus(let status, let code)?: return Self.signed(status: status, code: code)
        case .unsigned?:
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"MaLoi":"00","MoTaLoi":"Thanh cong"}"#)))
        case .slow(let duration)?:
            try? await Task.sleep(for: duration)
            return Self.signed(status: 200, code: "00")
        case nil:
            guard verified, let id = header("webhook-id") else { return Self.signed(status: 401, code: "97") }
            let isNew = seen.withLock { $0.insert(id).inserted }
            return Self.signed(status: 200, code: isNew ? "00" : "02")
        }
    }

    private static func signed(status: Int, code: String) -> Response {
        let body = Array(#"{"MaLoi":"\#(code)","MoTaLoi":"test receiver"}"#.utf8)
        let headers = WebhookSigner(secret: TestKeys.current).headers(for: body)
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[HTTPField.Name("webhook-id")!] = headers.id
        fields[HTTPField.Name("webhook-timestamp")!] = String(headers.timestamp)
        fields[HTTPField.Name("webhook-signature")!] = headers.signature
        fields[HTTPField.Name("x-partner-code")!] = "BTH"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Waits until `condition` holds on the deliveries so far.
    @discardableResult
    func wait(
        deadline: Duration = .seconds(20), _ what: String = "callback deliveries",
        _ condition: ([ReceivedCallback]) -> Bool
    ) async throws -> [ReceivedCallback] {
        try await poll(until: { condition(self.deliveries) }, deadline: deadline, interval: .milliseconds(20), what)
        return deliveries
    }

    /// Deliveries of one transaction (`MaGiaoDich`).
    func deliveries(of transactionID: String) -> [ReceivedCallback] {
        deliveries.filter { $0.json["MaGiaoDich"] as? String == transactionID }
    }
}

/// Runs `body` with a sandbox and a loopback callback receiver.
func withSandboxAndReceiver(
    settings: SandboxSettings = SandboxSettings(),
    configure: (inout SandboxConfiguration) -> Void = { _ in },
    _ body: (SandboxHarness, CallbackReceiver) async throws -> Void
) async throws {
    let receiver = try await CallbackReceiver.start()
    do {
        try await withSandbox(settings: settings, configure: configure) { try await body($0, receiver) }
    } catch {
        await receiver.stop()
        throw error
    }
    await receiver.stop()
}
