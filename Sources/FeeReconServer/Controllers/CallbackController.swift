import FeeReconCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PortalGateway
import Signing
import Synchronization

/// `POST /v1/callbacks/portal` (PROTOCOL.md §3). Verifies before reading the body as JSON,
/// stores every verified message raw in the same transaction that applies it, and answers only
/// after that commit. A rejected message stores nothing: it is counted, and logged at most once
/// a second per reason, so a flood of forgeries fills neither the database nor the logs.
struct CallbackController {
    let notifications: PortalNotifications
    let batcher: CallbackBatcher
    let rejections: RejectionLog

    func register(on router: Router<AppRequestContext>) {
        router.post("v1/callbacks/portal", use: receive)
    }

    @Sendable func receive(_ request: Request, context: AppRequestContext) async throws -> Response {
        let header: (String) -> String? = { name in (Self.fieldNames[name] ?? HTTPField.Name(name)).flatMap { request.headers[$0] } }
        // Every reply to a configured partner is signed, the 413 included.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > StandardWebhooks.maxBodySize {
            rejections.record("body_too_large", logger: context.logger)
            return reply(notifications.tooLargeReply, partner: notifications.configuredPartner(header("x-partner-code")))
        }
        let body: [UInt8]
        do {
            body = Array(try await request.body.collect(upTo: StandardWebhooks.maxBodySize).readableBytesView)
        } catch is NIOTooManyBytesError {
            rejections.record("body_too_large", logger: context.logger)
            return reply(notifications.tooLargeReply, partner: notifications.configuredPartner(header("x-partner-code")))
        }

        let verified: PortalNotifications.Verified
        switch notifications.verify(header: header, body: body) {
        case .success(let value):
            verified = value
        case .failure(let rejection):
            rejections.record(rejection.reason, logger: context.logger)
            return reply(notifications.rejectionReply, partner: rejection.partner)
        }

        let decoded = notifications.decode(body, partner: verified.partner)
        if case .partnerMismatch = decoded {
            rejections.record("partner_mismatch", logger: context.logger)
            return reply(notifications.rejectionReply, partner: verified.partner)
        }
        let headers = request.headers.map { [$0.name.canonicalName, $0.value] }
        let answer = await batcher.submit(InboundCallback(
            partner: verified.partner, webhookID: verified.messageID, headers: headers, body: body, decoded: decoded))
        rejections.metrics.callbackAnswered(code: answer.code)
        return reply(
            .init(status: notifications.status(forCode: answer.code), code: answer.code, body: answer.body, isFinal: false),
            partner: verified.partner)
    }

    /// The header names verification reads and replies carry, parsed once rather than per request.
    private static let fieldNames: [String: HTTPField.Name] = Dictionary(
        uniqueKeysWithValues: [
            StandardWebhooks.idHeader, StandardWebhooks.timestampHeader, StandardWebhooks.signatureHeader, "x-partner-code",
        ].compactMap { name in HTTPField.Name(name).map { (name, $0) } })

    private func reply(_ reply: PortalNotifications.Reply, partner: PartnerCode?) -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(5)
        headers[.contentType] = "application/json"
        if let partner {
            for field in notifications.signedHeaders(for: reply.body, partner: partner) {
                if let name = Self.fieldNames[field.name] ?? HTTPField.Name(field.name) { headers[name] = field.value }
            }
        }
        return Response(
            status: HTTPResponse.Status(code: reply.status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }
}

/// Counts rejected inbound messages by reason and logs each reason at most once a second, with
/// how many were suppressed in between.
final class RejectionLog: Sendable {
    let metrics: ServiceMetrics

    init(metrics: ServiceMetrics) {
        self.metrics = metrics
    }

    private struct State {
        var lastLogged: [String: ContinuousClock.Instant] = [:]
        var suppressed: [String: Int] = [:]
    }

    private let state = Mutex(State())

    func record(_ reason: String, logger: Logger) {
        metrics.callbackRejected(reason: reason)
        let now = ContinuousClock.now
        let suppressed: Int? = state.withLock { state in
            if let last = state.lastLogged[reason], now - last < .seconds(1) {
                state.suppressed[reason, default: 0] += 1
                return nil
            }
            state.lastLogged[reason] = now
            return state.suppressed.removeValue(forKey: reason) ?? 0
        }
        if let suppressed {
            logger.warning("callback rejected", metadata: ["reason": "\(reason)", "suppressed": "\(suppressed)"])
        }
    }
}
