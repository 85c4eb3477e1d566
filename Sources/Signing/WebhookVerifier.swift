import Cryptography

/// What a successful verification established.
public struct VerifiedWebhook: Sendable, Hashable {
    /// The `webhook-id`, the receiver's idempotency key.
    public let id: String
    /// The `webhook-timestamp` in Unix seconds.
    public let timestamp: Int64
    /// Which of the verifier's keys matched (its index), e.g. to see when an old key stops being used.
    public let keyIndex: Int

    public init(id: String, timestamp: Int64, keyIndex: Int) {
        self.id = id
        self.timestamp = timestamp
        self.keyIndex = keyIndex
    }
}

/// Verifies incoming messages against a partner's current keys, before anything parses the body.
///
/// The checks, in order: body size, presence of the three headers, the id's character set, the
/// timestamp's form and distance from the clock, the signature header's form, and finally whether
/// any `v1` entry matches any key. Entries of other versions are skipped, but a malformed entry of
/// any version makes the whole header malformed, even if another entry would match.
public struct WebhookVerifier: Sendable {
    public let secrets: [WebhookSecret]
    public let tolerance: Int64
    private let clock: UnixClock

    public init(
        secrets: [WebhookSecret],
        tolerance: Int64 = StandardWebhooks.timestampTolerance,
        clock: @escaping UnixClock = systemUnixClock
    ) {
        precondition(tolerance >= 0, "negative timestamp tolerance")
        self.secrets = secrets
        self.tolerance = tolerance
        self.clock = clock
    }

    public init(secret: WebhookSecret, tolerance: Int64 = StandardWebhooks.timestampTolerance, clock: @escaping UnixClock = systemUnixClock) {
        self.init(secrets: [secret], tolerance: tolerance, clock: clock)
    }

    /// Verifies `body` (raw bytes, unparsed) against the three header values; `nil` means absent.
    /// `maxBodySize` is the protocol's 64 KiB unless a message kind is allowed more (a settlement
    /// file reply).
    public func verify(
        id: String?,
        timestamp: String?,
        signature: String?,
        body: some Collection<UInt8>,
        maxBodySize: Int = StandardWebhooks.maxBodySize
    ) throws(WebhookVerificationError) -> VerifiedWebhook {
        guard body.count <= maxBodySize else { throw .bodyTooLarge }
        guard let id, !id.isEmpty else { throw .missingMessageID }
        guard let timestamp, !timestamp.isEmpty else { throw .missingTimestamp }
        guard let signature, !signature.isEmpty else { throw .missingSignature }
        guard StandardWebhooks.isValidMessageID(id) else { throw .invalidMessageID }
        guard let seconds = Self.parseTimestamp(timestamp) else { throw .malformedTimestamp }

        let now = clock()
        let (age, overflow) = now.subtractingReportingOverflow(seconds)
        if overflow || age < -tolerance { throw .timestampTooNew }
        if age > tolerance { throw .timestampTooOld }

        let candidates = try Self.parseSignatures(signature)
        guard !candidates.isEmpty else { throw .noMatchingSignature }
        for (index, secret) in secrets.enumerated() {
            let expected = WebhookSigner.authenticationCode(key: secret.key, id: id, timestamp: timestamp, body: body)
            for candidate in candidates where constantTimeEquals(candidate, expected) {
                return VerifiedWebhook(id: id, timestamp: seconds, keyIndex: index)
            }
        }
        throw .noMatchingSignature
    }

    /// Verifies with headers looked up by name (lower-case Standard Webhooks names), so any HTTP
    /// library's header type can be adapted with one closure.
    public func verify(
        headers: (String) -> String?,
        body: some Collection<UInt8>,
        maxBodySize: Int = StandardWebhooks.maxBodySize
    ) throws(WebhookVerificationError) -> VerifiedWebhook {
        try verify(
            id: headers(StandardWebhooks.idHeader),
            timestamp: headers(StandardWebhooks.timestampHeader),
            signature: headers(StandardWebhooks.signatureHeader),
            body: body,
            maxBodySize: maxBodySize)
    }

    /// Digits only, no sign, no leading zero, fits in `Int64`.
    static func parseTimestamp(_ text: String) -> Int64? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 19 else { return nil }
        if utf8.count > 1, utf8.first == UInt8(ascii: "0") { return nil }
        var value: Int64 = 0
        for c in utf8 {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = shifted.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }

    /// The decoded `v1` MACs of a signature header. Throws for a malformed header: an empty
    /// entry (doubled or stray spaces), an entry without a comma or version, a `v1` value that is
    /// empty or not base64. Entries of other versions are ignored whatever they hold, and a `v1`
    /// value that is base64 of another length than a MAC is left out (it matches no key, and
    /// another entry may), as independent implementations do.
    static func parseSignatures(_ header: String) throws(WebhookVerificationError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for entry in header.utf8.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false) {
            guard let comma = entry.firstIndex(of: UInt8(ascii: ",")) else { throw .malformedSignature }
            let version = entry[entry.startIndex..<comma]
            let value = entry[entry.index(after: comma)...]
            guard !version.isEmpty else { throw .malformedSignature }
            guard version.elementsEqual("v1".utf8) else { continue }
            guard !value.isEmpty, let mac = Base64.decode(Substring(value)) else { throw .malformedSignature }
            if mac.count == HMACSHA256.byteCount { result.append(mac) }
        }
        return result
    }
}
