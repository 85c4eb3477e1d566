import Cryptography

/// A partner's signing key, parsed from `whsec_<base64 of 24–64 bytes>`. Its description, debug
/// description and reflection never show the key.
public struct WebhookSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public static let prefix = "whsec_"
    public static let minimumKeyLength = 24
    public static let maximumKeyLength = 64

    let key: [UInt8]

    /// Parses the `whsec_` form strictly: the prefix, then padded standard base64 of 24–64 bytes.
    public init(_ text: String) throws(WebhookSecretError) {
        guard text.hasPrefix(Self.prefix) else { throw .missingPrefix }
        guard let key = Base64.decode(text.dropFirst(Self.prefix.count)) else { throw .invalidBase64 }
        try self.init(keyBytes: key)
    }

    /// Wraps raw key bytes (24–64 of them).
    public init(keyBytes: [UInt8]) throws(WebhookSecretError) {
        guard (Self.minimumKeyLength...Self.maximumKeyLength).contains(keyBytes.count) else {
            throw .invalidKeyLength
        }
        self.key = keyBytes
    }

    /// A new random key of `byteCount` bytes (32 unless told), for provisioning a partner.
    public static func generate(byteCount: Int = 32) -> WebhookSecret {
        precondition((minimumKeyLength...maximumKeyLength).contains(byteCount), "webhook key length out of range")
        return WebhookSecret(validatedKey: SecureRandom.bytes(byteCount))
    }

    private init(validatedKey: [UInt8]) {
        self.key = validatedKey
    }

    /// The `whsec_` form, for handing to a secrets store or a peer's configuration. Never log it.
    public var exportedText: String {
        Self.prefix + Base64.encode(key)
    }

    public var description: String { "WebhookSecret(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

/// Why a `whsec_` string is not a usable key. Never carries any part of the text.
public struct WebhookSecretError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Reason: Hashable, Sendable {
        case missingPrefix
        case invalidBase64
        case invalidKeyLength
    }

    private let reason: Reason

    private init(_ reason: Reason) {
        self.reason = reason
    }

    public static let missingPrefix = WebhookSecretError(.missingPrefix)
    public static let invalidBase64 = WebhookSecretError(.invalidBase64)
    public static let invalidKeyLength = WebhookSecretError(.invalidKeyLength)

    public var description: String {
        switch reason {
        case .missingPrefix: "webhook secret: missing whsec_ prefix"
        case .invalidBase64: "webhook secret: key is not strict base64"
        case .invalidKeyLength: "webhook secret: key must be 24 to 64 bytes"
        }
    }
}
