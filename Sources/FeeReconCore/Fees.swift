/// The two kinds of money a procedure can charge (`LoaiPhiLePhi`): a fee for a service (phí) and a
/// charge levied by the state (lệ phí). Totals are reported per kind.
public enum FeeKind: String, CaseIterable, Hashable, Sendable, Codable {
    /// Phí — wire code `1`.
    case fee
    /// Lệ phí — wire code `2`.
    case charge

    /// The Vietnamese label shown to citizens.
    public var vietnameseName: String {
        switch self {
        case .fee: "Phí"
        case .charge: "Lệ phí"
        }
    }

    public var englishName: String {
        switch self {
        case .fee: "fee"
        case .charge: "charge"
        }
    }
}

/// One line of a dossier's fees.
public struct FeeLine: Hashable, Sendable, Codable {
    public var kind: FeeKind
    public var code: String
    public var name: String
    public var amount: Money

    public init(kind: FeeKind, code: String, name: String, amount: Money) {
        self.kind = kind
        self.code = code
        self.name = name
        self.amount = amount
    }

    public static let maximumLines = 50

    /// Checks one line's code, name and amount; `index` is used in the field path, e.g. `feeLines[3].amount`.
    public func validate(index: Int) throws(ValidationError) {
        let prefix = "feeLines[\(index)]"
        try NameRule.validateCode(code, field: "\(prefix).code")
        try NameRule.validate(name, field: "\(prefix).name")
        guard amount.isValidTransactionAmount else {
            throw ValidationError(field: "\(prefix).amount", reason: "must be a whole number of đồng from 1 to 1000000000000")
        }
    }

    /// Validates a dossier's lines and returns their total, which must itself be a valid amount for
    /// a single payment (the portal takes 1…10^12 đồng per transaction).
    public static func validatedTotal(of lines: [FeeLine]) throws(ValidationError) -> Money {
        guard !lines.isEmpty else { throw ValidationError(field: "feeLines", reason: "must contain at least one fee line") }
        guard lines.count <= maximumLines else {
            throw ValidationError(field: "feeLines", reason: "must contain at most \(maximumLines) fee lines (has \(lines.count))")
        }
        for (index, line) in lines.enumerated() {
            try line.validate(index: index)
        }
        guard let total = Money.sum(lines.map(\.amount)), total.isValidTransactionAmount else {
            throw ValidationError(field: "feeLines", reason: "total must not exceed 1000000000000 đồng, the most one payment can carry")
        }
        return total
    }

    /// The total per kind, e.g. for the settlement file's `SoTienPhi` / `SoTienLePhi`.
    public static func totals(of lines: [FeeLine]) -> [FeeKind: Money] {
        var totals: [FeeKind: Money] = [:]
        for line in lines { totals[line.kind, default: .zero].dong += line.amount.dong }
        return totals
    }
}
