import FeeReconCore
import Signing

/// Where the portal is and which secrets each partner signs with.
public struct PortalConfiguration: Sendable {
    /// The API base, e.g. `https://gateway.example/ppdvcqg/v1` (no trailing slash needed).
    public var baseURL: String
    /// Each partner's secrets: the first signs, any verifies (rotation).
    public var partners: [PartnerCode: [WebhookSecret]]
    /// How long to wait for a create, query or refund reply before the outcome is unknown.
    public var requestTimeout: Duration
    /// How long to wait for a settlement file.
    public var settlementTimeout: Duration
    /// The most a settlement file may weigh. The 64 KiB message cap is for JSON messages; a busy
    /// day's file is far larger.
    public var maxSettlementBytes: Int

    public init(
        baseURL: String, partners: [PartnerCode: [WebhookSecret]], requestTimeout: Duration = .seconds(10),
        settlementTimeout: Duration = .seconds(120), maxSettlementBytes: Int = 256 * 1024 * 1024
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.partners = partners
        self.requestTimeout = requestTimeout
        self.settlementTimeout = settlementTimeout
        self.maxSettlementBytes = maxSettlementBytes
    }
}
