/// Why a message failed verification. `code` is short and stable for metrics and logs; the
/// description adds which header was at fault but never a key, a signature or body bytes.
public struct WebhookVerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Header: String, Hashable, Sendable {
        case id = "webhook-id"
        case timestamp = "webhook-timestamp"
        case signature = "webhook-signature"
    }

    private enum Reason: Hashable, Sendable {
        case missingHeader(Header)
        case invalidMessageID
        case malformedTimestamp
        case timestampTooOld
        case timestampTooNew
        case malformedSignature
        case noMatchingSignature
        case bodyTooLarge
    }

    private let reason: Reason

    private init(_ reason: Reason) {
        self.reason = reason
    }

    /// `webhook-id` is absent or empty.
    public static let missingMessageID = WebhookVerificationError(.missingHeader(.id))
    /// `webhook-timestamp` is absent or empty.
    public static let missingTimestamp = WebhookVerificationError(.missingHeader(.timestamp))
    /// `webhook-signature` is absent or empty.
    public static let missingSignature = WebhookVerificationError(.missingHeader(.signature))
    /// `webhook-id` is not 1–64 characters of `[A-Za-z0-9_-]`.
    public static let invalidMessageID = WebhookVerificationError(.invalidMessageID)
    /// `webhook-timestamp` is not a canonical non-negative integer (digits, no leading zero).
    public static let malformedTimestamp = WebhookVerificationError(.malformedTimestamp)
    /// `webhook-timestamp` is more than the tolerance behind the receiver's clock.
    public static let timestampTooOld = WebhookVerificationError(.timestampTooOld)
    /// `webhook-timestamp` is more than the tolerance ahead of the receiver's clock.
    public static let timestampTooNew = WebhookVerificationError(.timestampTooNew)
    /// `webhook-signature` is not a single-space-separated list of well-formed `version,value` entries.
    public static let malformedSignature = WebhookVerificationError(.malformedSignature)
    /// No `v1` entry matches any of the keys tried.
    public static let noMatchingSignature = WebhookVerificationError(.noMatchingSignature)
    /// The body is over `StandardWebhooks.maxBodySize`.
    public static let bodyTooLarge = WebhookVerificationError(.bodyTooLarge)

    /// Whether a required header was absent or empty (any of the three).
    public var isMissingHeader: Bool {
        if case .missingHeader = reason { true } else { false }
    }

    /// A short stable code, one of a fixed set, for metric labels and log fields.
    public var code: String {
        switch reason {
        case .missingHeader: "missing_header"
        case .invalidMessageID: "invalid_message_id"
        case .malformedTimestamp: "malformed_timestamp"
        case .timestampTooOld: "timestamp_too_old"
        case .timestampTooNew: "timestamp_too_new"
        case .malformedSignature: "malformed_signature"
        case .noMatchingSignature: "no_matching_signature"
        case .bodyTooLarge: "body_too_large"
        }
    }

    public var description: String {
        switch reason {
        case .missingHeader(let header): "webhook verification failed: missing or empty \(header.rawValue) header"
        case .invalidMessageID: "webhook verification failed: invalid webhook-id"
        case .malformedTimestamp: "webhook verification failed: malformed webhook-timestamp"
        case .timestampTooOld: "webhook verification failed: webhook-timestamp too old"
        case .timestampTooNew: "webhook verification failed: webhook-timestamp too new"
        case .malformedSignature: "webhook verification failed: malformed webhook-signature"
        case .noMatchingSignature: "webhook verification failed: no matching signature"
        case .bodyTooLarge: "webhook verification failed: body too large"
        }
    }
}
