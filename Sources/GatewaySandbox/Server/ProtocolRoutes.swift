import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Signing

/// The signed JSON endpoints of PROTOCOL.md §1, §4, §5 and §6. Each request is authenticated
/// before its body is parsed; each reply is signed with the partner's current key.
struct ProtocolRoutes: Sendable {
    let engine: SandboxEngine

    static let basePath = "ppdvcqg/v1"

    func register(on router: Router<SandboxRequestContext>) {
        let group = router.group(RouterPath(Self.basePath))
        group.post("giao-dich/khoi-tao") { request, context in
            await self.handle(request, context, endpoint: "create") { partner, id, body in
                try await engine.create(partner: partner, webhookID: id, body: body)
            }
        }
        group.post("giao-dich/tra-cuu") { request, context in
            await self.handle(request, context, endpoint: "query") { partner, id, body in
                try await engine.query(partner: partner, webhookID: id, body: body)
            }
        }
        group.post("giao-dich/hoan-tien") { request, context in
            await self.handle(request, context, endpoint: "refund") { partner, id, body in
                try await engine.refund(partner: partner, webhookID: id, body: body)
            }
        }
        group.get("doi-soat/:day") { request, context in
            let day = context.parameters.get("day") ?? ""
            return await self.handle(request, context, endpoint: "settlement") { partner, id, _ in
                try await engine.settlement(partner: partner, webhookID: id, day: day)
            }
        }
    }

    /// Partner lookup, size cap, body read, verification, then `process`; every failure is a
    /// protocol reply, never a bare 500.
    func handle(
        _ request: Request, _ context: SandboxRequestContext, endpoint: String,
        process: (PartnerKeys, String, [UInt8]) async throws -> ProtocolReply
    ) async -> Response {
        await engine.stats.measure(endpoint) {
            guard let code = request.headers[.partnerCode], let partner = engine.partners[code] else {
                return Self.unsigned(.invalidSignature, detail: "x-partner-code")
            }
            let limit = StandardWebhooks.maxBodySize
            if let length = request.headers[.contentLength], let declared = Int(length), declared > limit {
                return sign(.rejection(ProtocolRejection(.malformed, "body over 64 KiB")), status: 413, partner: partner)
            }
            var body: [UInt8] = []
            do {
                for try await buffer in request.body {
                    guard body.count + buffer.readableBytes <= limit else {
                        return sign(.rejection(ProtocolRejection(.malformed, "body over 64 KiB")), status: 413, partner: partner)
                    }
                    body.append(contentsOf: buffer.readableBytesView)
                }
            } catch {
                return sign(.rejection(ProtocolRejection(.malformed, "unreadable body")), partner: partner)
            }
            let webhookID: String
            do throws(WebhookVerificationError) {
                let verified = try partner.verifier.verify(
                    id: request.headers[.webhookID], timestamp: request.headers[.webhookTimestamp],
                    signature: request.headers[.webhookSignature], body: body)
                webhookID = verified.id
            } catch {
                context.logger.info("request rejected", metadata: ["partner": "\(code)", "reason": "\(error.code)"])
                return sign(.rejection(ProtocolRejection(.invalidSignature)), partner: partner)
            }
            do {
                return sign(try await process(partner, webhookID, body), partner: partner)
            } catch {
                context.logger.error("request failed", metadata: ["partner": "\(code)", "endpoint": "\(endpoint)", "error": "\(error)"])
                return sign(.rejection(ProtocolRejection(.otherError)), partner: partner)
            }
        }
    }

    /// Signs `reply` with a fresh `webhook-id` and the current time, with the partner's current key.
    func sign(_ reply: ProtocolReply, status: Int? = nil, partner: PartnerKeys) -> Response {
        let headers = partner.signer.headers(for: reply.body, id: engine.newReplyID())
        var fields = HTTPFields()
        fields[.webhookID] = headers.id
        fields[.webhookTimestamp] = String(headers.timestamp)
        fields[.webhookSignature] = headers.signature
        fields[.partnerCode] = partner.code
        fields[.cacheControl] = "no-store"
        return .bytes(reply.body, status: status ?? reply.status, contentType: reply.contentType, headers: fields)
    }

    /// The one reply that cannot be signed: no known partner, so no key.
    static func unsigned(_ code: ResultCode, detail: String?) -> Response {
        .bytes(ReplyBody.error(code, detail: detail), status: code.httpStatus, contentType: "application/json")
    }
}
