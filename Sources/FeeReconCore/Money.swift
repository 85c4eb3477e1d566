/// An amount of Vietnamese đồng. VND has no minor unit, so the value is a whole number of đồng;
/// it never passes through floating point.
public struct Money: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var dong: Int64

    public init(dong: Int64) { self.dong = dong }

    public static let zero = Money(dong: 0)

    /// The largest amount the portal accepts in one transaction or fee line: 10^12 đồng.
    public static let maximumTransaction = Money(dong: 1_000_000_000_000)

    /// Whether the amount is a valid transaction or fee-line amount (1…10^12 đồng).
    public var isValidTransactionAmount: Bool { dong >= 1 && dong <= Self.maximumTransaction.dong }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.dong < rhs.dong }

    /// Addition that reports overflow instead of trapping.
    public func adding(_ other: Money) -> Money? {
        let (sum, overflow) = dong.addingReportingOverflow(other.dong)
        return overflow ? nil : Money(dong: sum)
    }

    public func subtracting(_ other: Money) -> Money? {
        let (difference, overflow) = dong.subtractingReportingOverflow(other.dong)
        return overflow ? nil : Money(dong: difference)
    }

    /// The sum of `amounts`, or `nil` on overflow.
    public static func sum(_ amounts: some Sequence<Money>) -> Money? {
        var total = Money.zero
        for amount in amounts {
            guard let next = total.adding(amount) else { return nil }
            total = next
        }
        return total
    }

    /// Vietnamese notation: dots between thousands and the đồng sign, e.g. `150.000 ₫`.
    public var formatted: String {
        let digits = Array(String(dong.magnitude))
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(".") }
            grouped.append(digit)
        }
        return (dong < 0 ? "-" : "") + grouped + " ₫"
    }

    public var description: String { formatted }

    public init(from decoder: any Decoder) throws {
        dong = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(dong)
    }
}
