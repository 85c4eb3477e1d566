/// A dossier's payment status, which follows its succeeded payments.
public enum DossierStatus: String, CaseIterable, Hashable, Sendable, Codable {
    case awaitingPayment = "awaiting_payment"
    case paid
    /// Paid more than once over: a refund is needed.
    case overpaid

    /// The status implied by what is due and what succeeded payments brought in.
    public static func from(amountDue: Money, amountPaid: Money) -> DossierStatus {
        if amountPaid < amountDue { return .awaitingPayment }
        return amountPaid == amountDue ? .paid : .overpaid
    }
}

/// The categories every settlement row and every locally succeeded intent of a day ends in.
public enum ReconciliationCategory: String, CaseIterable, Hashable, Sendable, Codable {
    case matched
    case healedMissingCallback = "healed_missing_callback"
    case amountMismatch = "amount_mismatch"
    case unknownReference = "unknown_reference"
    case missingInSettlement = "missing_in_settlement"
    case statusMismatch = "status_mismatch"
    case duplicatePayment = "duplicate_payment"
    case refundMismatch = "refund_mismatch"

    /// Whether the category opens an exception for a person to resolve.
    public var opensException: Bool {
        switch self {
        case .matched, .healedMissingCallback: false
        case .amountMismatch, .unknownReference, .missingInSettlement, .statusMismatch, .duplicatePayment, .refundMismatch: true
        }
    }
}
