import FeeReconCore
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PortalGateway
import Signing
import TestSupport

/// The service's side of §3 in miniature: a loopback endpoint that verifies each callback with
/// `PortalNotifications`, decodes it, records what it decoded, and answers with the adapter's own
/// signed reply (`00`, or `03`/`97` when it could not accept it).
final class NotificationReceiver: Sendable {
    struct Delivery: Sendable {
        var messageID: String?
        var body: [UInt8]
        /// What `decode` made of it; nil when verification failed.
        var decoded: PortalNotifications.Decoded?
        var rejection: String?
        var replyCode: String
    }

    let notifications: PortalNotifications
    private let received = Locked<[Delivery]>([])
    private let server = LoopbackApp()

    private init(partners: [PartnerCode: [WebhookSecret]]) {
        notifications = PortalNotifications(partners: partners)
    }

    var url: String { "http://127.0.0.1:\(server.port)/callbacks" }
    var deliveries: [Delivery] { received.value }

    static func start(partners: [PartnerCode: [WebhookSecret]] = [SandboxPeer.partner: [Keys.partner]]) async throws -> NotificationReceiver {
        let receiver = NotificationReceiver(partners: partners)
        let router = Router()
        router.post("callbacks") { request, _ -> Response in
            var request = request
            let body = Array(try await request.collectBody(upTo: 64 * 1024).readableBytesView)
            return receiver.handle(headers: request.headers, body: body)
        }
        try await receiver.server.start(router, label: "notification-receiver")
        return receiver
    }

    func stop() async {
        await server.stop()
    }

    private func handle(headers: HTTPFields, body: [UInt8]) -> Response {
        let header: (String) -> String? = { name in HTTPField.Name(name).flatMap { headers[$0] } }
        var delivery = Delivery(messageID: header("webhook-id"), body: body, decoded: nil, rejection: nil, replyCode: "")
        let reply: PortalNotifications.Reply
        var partner: PartnerCode?
        switch notifications.verify(header: header, body: body) {
        case .failure(let rejection):
            delivery.rejection = rejection.reason
            partner = rejection.partner
            reply = notifications.rejectionReply
        case .success(let verified):
            partner = verified.partner
            let decoded = notifications.decode(body, partner: verified.partner)
            delivery.decoded = decoded
            switch decoded {
            case .notification: reply = notifications.reply(.applied)
            case .malformed(let reason, _, _): reply = notifications.reply(.malformed(reason))
            case .partnerMismatch: reply = notifications.rejectionReply
            }
        }
        delivery.replyCode = reply.code
        received.withLock { $0.append(delivery) }
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        if let partner {
            for (name, value) in notifications.signedHeaders(for: reply.body, partner: partner) {
                fields[HTTPField.Name(name)!] = value
            }
        }
        return Response(
            status: HTTPResponse.Status(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    /// Polls the deliveries until `condition` holds on them.
    @discardableResult
    func wait(_ what: String, deadline: Duration = .seconds(30), _ condition: ([Delivery]) -> Bool) async throws -> [Delivery] {
        var last: [Delivery] = []
        try await poll(until: {
            last = self.deliveries
            return condition(last)
        }, deadline: deadline, interval: .milliseconds(20), what)
        return last
    }
}

extension NotificationReceiver.Delivery {
    var payment: PaymentResultNotice? {
        if case .notification(.paymentResult(let notice), _, _)? = decoded { notice } else { nil }
    }

    var refund: RefundResultNotice? {
        if case .notification(.refundResult(let notice), _, _)? = decoded { notice } else { nil }
    }
}

/// A signed stand-in for the gateway that answers every request with the body a test set, for
/// the few replies the sandbox never produces by design (e.g. a query's `TrangThaiGD 05`, which
/// §4 reserves: there the status is the payment's own). Every reply is signed with `secret` and
/// names `partnerHeader`.
final class ScriptedGateway: Sendable {
    struct Script: Sendable {
        var status: Int = 200
        var body: String = #"{"MaLoi":"99","MoTaLoi":"Loi khac"}"#
        var contentType = "application/json"
        var partnerHeader = SandboxPeer.partner.rawValue
    }

    private let script = Locked(Script())
    private let server = LoopbackApp()
    private let signer: WebhookSigner

    private init(secret: WebhookSecret) {
        signer = WebhookSigner(secret: secret)
    }

    var apiURL: String { "http://127.0.0.1:\(server.port)/ppdvcqg/v1" }

    func answer(_ update: (inout Script) -> Void) {
        script.withLock { update(&$0) }
    }

    static func start(secret: WebhookSecret = Keys.partner) async throws -> ScriptedGateway {
        let gateway = ScriptedGateway(secret: secret)
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            var request = request
            _ = try await request.collectBody(upTo: 64 * 1024)
            return gateway.reply()
        }
        router.post("ppdvcqg/v1/giao-dich/:operation", use: handler)
        router.get("ppdvcqg/v1/doi-soat/:day", use: handler)
        try await gateway.server.start(router, label: "scripted-gateway")
        return gateway
    }

    func stop() async {
        await server.stop()
    }

    private func reply() -> Response {
        let script = self.script.value
        let body = Array(script.body.utf8)
        var fields = HTTPFields()
        fields[.contentType] = script.contentType
        for (name, value) in signer.headers(for: body).fields { fields[HTTPField.Name(name)!] = value }
        fields[HTTPField.Name("x-partner-code")!] = script.partnerHeader
        return Response(
            status: HTTPResponse.Status(code: script.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}


/// A Hummingbird application on a loopback port chosen by the kernel, run until `stop()`: the
/// scaffolding of the peers above.
final class LoopbackApp: Sendable {
    private let boundPort = Locked<Int?>(nil)
    private let task = Locked<Task<Void, any Error>?>(nil)

    /// The bound port (0 before `start` returns).
    var port: Int { boundPort.value ?? 0 }

    func start(_ router: Router<BasicRequestContext>, label: String) async throws {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { [boundPort] channel in boundPort.withLock { $0 = channel.localAddress?.port } },
            logger: logger)
        task.withLock { $0 = Task { try await app.run() } }
        try await poll(until: { [boundPort] in boundPort.value != nil }, deadline: .seconds(30), "\(label) listening")
    }

    func stop() async {
        let running = task.withLock { task in
            defer { task = nil }
            return task
        }
        running?.cancel()
        _ = try? await running?.value
    }
}
