import Cryptography

/// The three Standard Webhooks headers of one signed message.
public struct WebhookHeaders: Sendable, Hashable {
    public var id: String
    public var timestamp: Int64
    /// Space-separated `v1,<base64>` entries, one per signing key.
    public var signature: String

    public init(id: String, timestamp: Int64, signature: String) {
        self.id = id
        self.timestamp = timestamp
        self.signature = signature
    }

    /// The headers as ordered name/value pairs, ready to add to a request or a reply.
    public var fields: [(name: String, value: String)] {
        [
            (StandardWebhooks.idHeader, id),
            (StandardWebhooks.timestampHeader, String(timestamp)),
            (StandardWebhooks.signatureHeader, signature),
        ]
    }
}

/// Signs outgoing messages with one or more keys (more than one during a key rotation, so a
/// receiver that knows either key accepts the message).
public struct WebhookSigner: Sendable {
    public let secrets: [WebhookSecret]
    private let clock: UnixClock

    public init(secrets: [WebhookSecret], clock: @escaping UnixClock = systemUnixClock) {
        precondition(!secrets.isEmpty, "a webhook signer needs at least one key")
        self.secrets = secrets
        self.clock = clock
    }

    public init(secret: WebhookSecret, clock: @escaping UnixClock = systemUnixClock) {
        self.init(secrets: [secret], clock: clock)
    }

    /// A fresh message id: `msg_` and 26 random alphanumerics (about 155 bits).
    public static func newMessageID() -> String {
        "msg_" + SecureRandom.string(length: 26, alphabet: SecureRandom.alphanumeric)
    }

    /// The `webhook-signature` value for `body` under every key, space-separated.
    public func signature(id: String, timestamp: Int64, body: some Collection<UInt8>) -> String {
        precondition(StandardWebhooks.isValidMessageID(id), "invalid webhook-id")
        precondition(timestamp >= 0, "negative webhook-timestamp")
        let timestampText = String(timestamp)
        return secrets.map { secret in
            "v1," + Base64.encode(Self.authenticationCode(key: secret.key, id: id, timestamp: timestampText, body: body))
        }.joined(separator: " ")
    }

    /// The full header set for `body`, timestamped now. Pass `id` to keep a message id across
    /// retries of the same event; otherwise a fresh one is made.
    public func headers(for body: some Collection<UInt8>, id: String = WebhookSigner.newMessageID()) -> WebhookHeaders {
        let timestamp = clock()
        return WebhookHeaders(id: id, timestamp: timestamp, signature: signature(id: id, timestamp: timestamp, body: body))
    }

    /// HMAC-SHA256(key, "{id}.{timestamp}.{body}"), streamed so the body is never copied into a
    /// joined buffer.
    static func authenticationCode(key: [UInt8], id: String, timestamp: String, body: some Collection<UInt8>) -> [UInt8] {
        var mac = HMACSHA256(key: key)
        var id = id
        var timestamp = timestamp
        id.withUTF8 { mac.update(UnsafeRawBufferPointer($0)) }
        mac.update(dot)
        timestamp.withUTF8 { mac.update(UnsafeRawBufferPointer($0)) }
        mac.update(dot)
        mac.update(body)
        return mac.finalize()
    }

    private static let dot: [UInt8] = [UInt8(ascii: ".")]
}
