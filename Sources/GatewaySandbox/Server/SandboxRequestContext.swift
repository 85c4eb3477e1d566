import HTTPTypes
import Hummingbird
import NIOCore

/// The sandbox's per-request context: Hummingbird's core storage and whether the peer is on
/// loopback (the control API answers loopback peers only).
public struct SandboxRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let isLoopbackPeer: Bool

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        isLoopbackPeer = Self.isLoopback(source.channel.remoteAddress)
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}

extension HTTPField.Name {
    static let webhookID = HTTPField.Name("webhook-id")!
    static let webhookTimestamp = HTTPField.Name("webhook-timestamp")!
    static let webhookSignature = HTTPField.Name("webhook-signature")!
    static let partnerCode = HTTPField.Name("x-partner-code")!
}

extension Response {
    /// A response whose body is exactly `bytes`.
    static func bytes(_ bytes: [UInt8], status: Int, contentType: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = contentType
        return Response(
            status: HTTPResponse.Status(code: status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
