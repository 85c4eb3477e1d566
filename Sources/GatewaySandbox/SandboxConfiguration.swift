import Logging
import Postgres
import Signing

/// A partner (`MaDoiTac`) and its keys. The first key is the current one, which signs replies and
/// callbacks; any of them verifies requests (rotation). Keys never appear in descriptions.
public struct SandboxPartner: Sendable, CustomStringConvertible {
    public var code: String
    public var secrets: [WebhookSecret]

    public init(code: String, secrets: [WebhookSecret]) {
        precondition(!secrets.isEmpty, "a partner needs at least one key")
        self.code = code
        self.secrets = secrets
    }

    /// Parses `CODE=whsec_…[,whsec_…]` (the CLI and environment form).
    public init(parsing text: String) throws(SandboxConfigurationError) {
        guard let equals = text.firstIndex(of: "=") else { throw .invalidPartner("expected CODE=whsec_...") }
        let code = String(text[..<equals]).trimmingSpaces
        guard !code.isEmpty, code.utf8.count <= 32,
              code.utf8.allSatisfy({ WireParser.isUpperAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
        else { throw .invalidPartner("partner code must be 1-32 characters of A-Z, 0-9, '.', '_'") }
        var secrets: [WebhookSecret] = []
        for part in text[text.index(after: equals)...].split(separator: ",") {
            do {
                secrets.append(try WebhookSecret(String(part).trimmingSpaces))
            } catch {
                throw .invalidPartner("partner \(code): \(error)")
            }
        }
        guard !secrets.isEmpty else { throw .invalidPartner("partner \(code) has no key") }
        self.init(code: code, secrets: secrets)
    }

    public var description: String { "SandboxPartner(\(code), \(secrets.count) key\(secrets.count == 1 ? "" : "s"))" }
}

/// Why a configuration value was refused; never includes a secret.
public struct SandboxConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    static func invalidPartner(_ reason: String) -> Self { Self(description: reason) }
    static func invalid(_ reason: String) -> Self { Self(description: reason) }
}

/// The settings a run may change while it runs (control API) as well as at start (CLI flags).
public struct SandboxSettings: Sendable, Codable, Equatable {
    /// Drives every seeded choice: ids and fault decisions.
    public var seed: UInt64 = 1
    public var faults = FaultSettings()
    /// Whether a day's settlement file is held back until 06:00 Vietnam time of the next day.
    public var settlementWindow = true
    /// Delivery attempts of one callback event, the first included.
    public var callbackAttempts: Int64 = 10
    /// Time between the starts of two attempts.
    public var callbackIntervalMilliseconds: Int64 = 300_000
    /// How long one attempt may take before it counts as unanswered.
    public var callbackTimeoutMilliseconds: Int64 = 10_000
    /// Payment window when a create request sends no `HanThanhToan`.
    public var paymentWindowSeconds: Int64 = 900
    /// How refunds end when no one decides through the control API.
    public var refundMode: RefundMode = .complete
    /// How long after acceptance a refund ends by itself (complete/reject modes).
    public var refundDelayMilliseconds: Int64 = 5_000
    /// Auto-pay for load tests: every new payment gets this outcome after the delay.
    public var autoOutcome: PaymentOutcome?
    public var autoOutcomeDelayMilliseconds: Int64 = 100

    public init() {}

    /// Put a `SandboxSettings` under this key of a decoder's `userInfo` to decode a partial
    /// document onto it (fields it omits keep their values there) instead of onto the defaults.
    public static let baseKey = CodingUserInfoKey(rawValue: "feerecon.sandbox.settings.base")!

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = decoder.userInfo[Self.baseKey] as? SandboxSettings ?? SandboxSettings()
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        faults = try c.decodeIfPresent(FaultSettings.self, forKey: .faults) ?? d.faults
        settlementWindow = try c.decodeIfPresent(Bool.self, forKey: .settlementWindow) ?? d.settlementWindow
        callbackAttempts = try c.decodeIfPresent(Int64.self, forKey: .callbackAttempts) ?? d.callbackAttempts
        callbackIntervalMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .callbackIntervalMilliseconds) ?? d.callbackIntervalMilliseconds
        callbackTimeoutMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .callbackTimeoutMilliseconds) ?? d.callbackTimeoutMilliseconds
        paymentWindowSeconds = try c.decodeIfPresent(Int64.self, forKey: .paymentWindowSeconds) ?? d.paymentWindowSeconds
        refundMode = try c.decodeIfPresent(RefundMode.self, forKey: .refundMode) ?? d.refundMode
        refundDelayMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .refundDelayMilliseconds) ?? d.refundDelayMilliseconds
        autoOutcome = c.contains(.autoOutcome) ? try c.decodeIfPresent(PaymentOutcome.self, forKey: .autoOutcome) : d.autoOutcome
        autoOutcomeDelayMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .autoOutcomeDelayMilliseconds) ?? d.autoOutcomeDelayMilliseconds
        try validate()
    }

    /// Refuses values outside what the sandbox can honour.
    public func validate() throws(SandboxConfigurationError) {
        guard (1...100).contains(callbackAttempts) else { throw .invalid("callback attempts must be 1 to 100") }
        guard (1...86_400_000).contains(callbackIntervalMilliseconds) else { throw .invalid("callback interval must be 1 ms to 1 day") }
        guard (1...600_000).contains(callbackTimeoutMilliseconds) else { throw .invalid("callback timeout must be 1 ms to 10 min") }
        guard (1...31 * 86_400).contains(paymentWindowSeconds) else { throw .invalid("payment window must be 1 s to 31 days") }
        guard (0...86_400_000).contains(refundDelayMilliseconds) else { throw .invalid("refund delay must be 0 to 1 day") }
        guard (0...86_400_000).contains(autoOutcomeDelayMilliseconds) else { throw .invalid("auto-outcome delay must be 0 to 1 day") }
    }
}

/// Everything `buildSandboxApplication` needs.
public struct SandboxConfiguration: Sendable {
    /// Address to listen on; port 0 picks a free port (see `onServerRunning`).
    public var host = "127.0.0.1"
    public var port = 8090
    /// The sandbox's own database, never the service's.
    public var database: PostgresConfiguration
    public var partners: [SandboxPartner]
    /// Base of `DuongDanThanhToan` links, e.g. `http://127.0.0.1:8090`; defaults to the bound address.
    public var publicBaseURL: String?
    public var settings = SandboxSettings()
    /// The beneficiary account and bank of settlement rows (`TKThuHuong`, `MaNHThuHuong`).
    public var beneficiaryAccount = "0123456789"
    public var beneficiaryBank = "VCB"
    /// How often the background workers look for due work when nothing wakes them sooner.
    public var workerPollMilliseconds: Int64 = 200
    /// Callback attempts in flight at once.
    public var maxConcurrentCallbacks = 128
    public var clock: SandboxClock = systemSandboxClock
    public var logger = Logger(label: "feerecon.sandbox")

    public init(database: PostgresConfiguration, partners: [SandboxPartner]) {
        self.database = database
        self.partners = partners
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\n" || s.last == "\r" { s.removeLast() }
        return String(s)
    }
}
