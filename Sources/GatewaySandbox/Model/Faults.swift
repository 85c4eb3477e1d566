import Cryptography

/// Which faults the sandbox injects and how often. Each rate is a probability in 0…1, applied per
/// event by a hash of the seed and the event's identity (never by arrival order), so a run with
/// the same seed and the same references injects the same faults.
public struct FaultSettings: Sendable, Codable, Equatable {
    /// A probability in 0…1.
    public typealias Rate = Double

    /// Deliver a callback twice with the same `webhook-id`.
    public var duplicate: Double = 0
    /// Hold a callback back so later callbacks overtake it.
    public var reorder: Double = 0
    /// Deliver a callback late.
    public var delay: Double = 0
    /// Never deliver a callback (the service must heal by query or settlement).
    public var drop: Double = 0
    /// Send the first attempt with a corrupted signature; genuine retries follow.
    public var tamperSignature: Double = 0
    /// Put a `SoTien` in the callback that differs from the truth.
    public var misstatedCallback: Double = 0
    /// Reverse a payment after its success callback (query and settlement later say `04`).
    public var reverseAfterSuccess: Double = 0
    /// Expire a payment (`11` callback), then report a late success (`00` callback; the money moved).
    public var lateSuccessAfterExpiry: Double = 0
    /// Change the amount of a settlement row (the file stays self-consistent).
    public var misstatedSettlementRow: Double = 0
    /// Break the settlement file's trailer, so the file must be rejected.
    public var settlementBrokenTrailer: Double = 0

    /// How late a delayed callback is.
    public var delayMilliseconds: Int64 = 30_000
    /// How long a reordered callback is held.
    public var reorderHoldMilliseconds: Int64 = 5_000
    /// How long after the original a duplicate is delivered.
    public var duplicateAfterMilliseconds: Int64 = 1_000
    /// How long after the success a fault reversal happens.
    public var reverseAfterMilliseconds: Int64 = 60_000
    /// How long after the expiry a late success arrives.
    public var lateSuccessAfterMilliseconds: Int64 = 60_000
    /// How many đồng a changed amount differs by (callbacks and settlement rows).
    public var amountChange: Int64 = 1_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FaultSettings()
        func rate(_ key: CodingKeys, _ fallback: Double) throws -> Double {
            let value = try c.decodeIfPresent(Double.self, forKey: key) ?? fallback
            guard value >= 0, value <= 1 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "a rate is between 0 and 1")
            }
            return value
        }
        func duration(_ key: CodingKeys, _ fallback: Int64) throws -> Int64 {
            let value = try c.decodeIfPresent(Int64.self, forKey: key) ?? fallback
            guard value >= 0, value <= 86_400_000 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "0 to 86400000 ms")
            }
            return value
        }
        duplicate = try rate(.duplicate, d.duplicate)
        reorder = try rate(.reorder, d.reorder)
        delay = try rate(.delay, d.delay)
        drop = try rate(.drop, d.drop)
        tamperSignature = try rate(.tamperSignature, d.tamperSignature)
        misstatedCallback = try rate(.misstatedCallback, d.misstatedCallback)
        reverseAfterSuccess = try rate(.reverseAfterSuccess, d.reverseAfterSuccess)
        lateSuccessAfterExpiry = try rate(.lateSuccessAfterExpiry, d.lateSuccessAfterExpiry)
        misstatedSettlementRow = try rate(.misstatedSettlementRow, d.misstatedSettlementRow)
        settlementBrokenTrailer = try rate(.settlementBrokenTrailer, d.settlementBrokenTrailer)
        delayMilliseconds = try duration(.delayMilliseconds, d.delayMilliseconds)
        reorderHoldMilliseconds = try duration(.reorderHoldMilliseconds, d.reorderHoldMilliseconds)
        duplicateAfterMilliseconds = try duration(.duplicateAfterMilliseconds, d.duplicateAfterMilliseconds)
        reverseAfterMilliseconds = try duration(.reverseAfterMilliseconds, d.reverseAfterMilliseconds)
        lateSuccessAfterMilliseconds = try duration(.lateSuccessAfterMilliseconds, d.lateSuccessAfterMilliseconds)
        amountChange = try c.decodeIfPresent(Int64.self, forKey: .amountChange) ?? d.amountChange
        guard amountChange >= 1, amountChange <= 1_000_000_000 else {
            throw DecodingError.dataCorruptedError(forKey: .amountChange, in: c, debugDescription: "1 to 10^9 dong")
        }
    }
}

/// The kinds of decision the seed drives; the raw value is mixed into the hash.
enum FaultKind: String, Sendable, CaseIterable {
    case duplicate, reorder, delay, drop, tamperSignature, misstatedCallback
    case reverseAfterSuccess, lateSuccessAfterExpiry
    case misstatedSettlementRow, settlementBrokenTrailer
}

/// Every seed-driven choice of the sandbox: fault decisions, transaction and refund ids, callback
/// ids and bank codes, each a pure function of the seed and the thing it is about.
struct SeededChoices: Sendable {
    var seed: UInt64

    /// 64 bits of SHA-256 over the seed and the parts, unit-separated.
    func hash(_ parts: [String]) -> UInt64 {
        var text = String(seed)
        for part in parts {
            text.append("\u{1F}")
            text.append(part)
        }
        let digest = SHA256.hash(text.utf8)
        return digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Whether `fault` strikes the event named by `parts`, at `rate`.
    func strikes(_ fault: FaultKind, rate: Double, _ parts: String...) -> Bool {
        guard rate > 0 else { return false }
        guard rate < 1 else { return true }
        let threshold = UInt64((rate * 1_000_000).rounded())
        return hash([fault.rawValue] + parts) % 1_000_000 < threshold
    }

    /// `PG` + `yyMMdd` of the request's Vietnam day + nine digits; `salt` moves past a collision.
    func transactionID(partner: String, reference: String, requestedAt: Int64, salt: Int) -> String {
        let digits = hash(["txn", partner, reference, String(salt)]) % 1_000_000_000
        return "PG" + WireTime.dayText(containing: requestedAt).dropFirst(2) + Self.pad(digits, 9)
    }

    /// `HT` + `yyMMdd` + nine digits for a refund.
    func refundID(partner: String, requestID: String, requestedAt: Int64, salt: Int) -> String {
        let digits = hash(["refund", partner, requestID, String(salt)]) % 1_000_000_000
        return "HT" + WireTime.dayText(containing: requestedAt).dropFirst(2) + Self.pad(digits, 9)
    }

    /// The stable `webhook-id` of one callback event (kept across its retries).
    func callbackID(partner: String, subject: String, event: String) -> String {
        let a = hash(["callback", partner, subject, event, "a"])
        let b = hash(["callback", partner, subject, event, "b"])
        return "cb_" + Hex.encode(withUnsafeBytes(of: a.bigEndian) { Array($0) } + withUnsafeBytes(of: b.bigEndian) { Array($0) })
    }

    static let banks = ["VCB", "BIDV", "CTG", "AGR", "TCB", "MB", "ACB", "VPB"]

    /// The payer's bank (`MaNganHang`) for a payment.
    func bank(partner: String, reference: String) -> String {
        Self.banks[Int(hash(["bank", partner, reference]) % UInt64(Self.banks.count))]
    }

    private static func pad(_ value: UInt64, _ width: Int) -> String {
        let s = String(value)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
