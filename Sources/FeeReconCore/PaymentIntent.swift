/// Where a payment intent is in its life. `created` is committed before the gateway is called;
/// `unknown` means the gateway call timed out and only a query can tell what happened.
public enum IntentStatus: String, CaseIterable, Hashable, Sendable, Codable {
    case created
    case pending
    case unknown
    case succeeded
    case failed
    case expired
    case cancelled
    case refundPending = "refund_pending"
    case refunded
    case partiallyRefunded = "partially_refunded"

    /// Open intents may still be paid; a dossier has at most one open intent.
    public var isOpen: Bool {
        switch self {
        case .created, .pending, .unknown: true
        case .succeeded, .failed, .expired, .cancelled, .refundPending, .refunded, .partiallyRefunded: false
        }
    }

    /// Whether money for this intent reached the province (and was not yet fully given back).
    public var holdsMoney: Bool {
        switch self {
        case .succeeded, .refundPending, .partiallyRefunded: true
        case .created, .pending, .unknown, .failed, .expired, .cancelled, .refunded: false
        }
    }

    /// Whether the payment itself succeeded, whatever happened to refunds afterwards.
    public var paymentSucceeded: Bool {
        switch self {
        case .succeeded, .refundPending, .refunded, .partiallyRefunded: true
        case .created, .pending, .unknown, .failed, .expired, .cancelled: false
        }
    }
}

/// What changed an intent; each is written as an append-only event row with the change.
public enum IntentEventKind: String, CaseIterable, Hashable, Sendable, Codable {
    case created
    case gatewayAccepted = "gateway_accepted"
    /// The create call timed out or the gateway could not be reached: the outcome is unknown.
    case gatewayUnreachable = "gateway_unreachable"
    /// The gateway refused the create request with a definite answer.
    case gatewayRejected = "gateway_rejected"
    /// Queried after its payment window, the gateway has no transaction for the intent: the create
    /// request never reached it, so nothing can be paid.
    case gatewayNotFound = "gateway_not_found"
    case paymentSucceeded = "payment_succeeded"
    case paymentFailed = "payment_failed"
    case paymentExpired = "payment_expired"
    case paymentCancelled = "payment_cancelled"
    /// Correction: the money moved after the payment window had closed.
    case lateSuccessAfterExpiry = "late_success_after_expiry"
    /// Correction: a success arrived for an intent recorded as failed or cancelled.
    case successAfterFailure = "success_after_failure"
    /// Correction: the gateway reversed a payment it had reported successful.
    case reversedAfterSuccess = "reversed_after_success"
    case refundRequested = "refund_requested"
    case refundCompleted = "refund_completed"
    case refundPartiallyCompleted = "refund_partially_completed"
    case refundRejected = "refund_rejected"
    /// The intent was marked for a person to look at; its status did not change.
    case flagged
    /// The automatic follow-up ran out of attempts; a person must decide.
    case manualReviewRequired = "manual_review_required"
}

/// One allowed edge of the intent state graph.
public struct IntentTransition: Hashable, Sendable {
    public var from: IntentStatus?
    public var event: IntentEventKind
    public var to: IntentStatus

    public init(from: IntentStatus?, event: IntentEventKind, to: IntentStatus) {
        self.from = from
        self.event = event
        self.to = to
    }
}

/// The payment intent state graph, written down as data: every status change the service makes
/// must be one of these edges, named by its event.
public enum IntentStateMachine {
    private static let open: [IntentStatus] = [.created, .pending, .unknown]
    private static let all = IntentStatus.allCases

    public static let transitions: Set<IntentTransition> = {
        var edges: [IntentTransition] = [
            IntentTransition(from: nil, event: .created, to: .created),
            IntentTransition(from: .created, event: .gatewayAccepted, to: .pending),
            IntentTransition(from: .unknown, event: .gatewayAccepted, to: .pending),
            IntentTransition(from: .created, event: .gatewayUnreachable, to: .unknown),
            IntentTransition(from: .created, event: .gatewayRejected, to: .failed),
            IntentTransition(from: .unknown, event: .gatewayRejected, to: .failed),
            IntentTransition(from: .created, event: .gatewayNotFound, to: .failed),
            IntentTransition(from: .unknown, event: .gatewayNotFound, to: .failed),
            IntentTransition(from: .expired, event: .lateSuccessAfterExpiry, to: .succeeded),
            IntentTransition(from: .failed, event: .successAfterFailure, to: .succeeded),
            IntentTransition(from: .cancelled, event: .successAfterFailure, to: .succeeded),
            IntentTransition(from: .succeeded, event: .reversedAfterSuccess, to: .failed),
            IntentTransition(from: .succeeded, event: .refundRequested, to: .refundPending),
            IntentTransition(from: .partiallyRefunded, event: .refundRequested, to: .refundPending),
            IntentTransition(from: .refundPending, event: .refundCompleted, to: .refunded),
            IntentTransition(from: .refundPending, event: .refundPartiallyCompleted, to: .partiallyRefunded),
            IntentTransition(from: .refundPending, event: .refundRejected, to: .succeeded),
            IntentTransition(from: .refundPending, event: .refundRejected, to: .partiallyRefunded),
        ]
        for status in open {
            edges.append(IntentTransition(from: status, event: .paymentSucceeded, to: .succeeded))
            edges.append(IntentTransition(from: status, event: .paymentFailed, to: .failed))
            edges.append(IntentTransition(from: status, event: .paymentExpired, to: .expired))
            edges.append(IntentTransition(from: status, event: .paymentCancelled, to: .cancelled))
        }
        for status in all {
            edges.append(IntentTransition(from: status, event: .flagged, to: status))
            edges.append(IntentTransition(from: status, event: .manualReviewRequired, to: status))
        }
        return Set(edges)
    }()

    public static func allows(from: IntentStatus?, event: IntentEventKind, to: IntentStatus) -> Bool {
        transitions.contains(IntentTransition(from: from, event: event, to: to))
    }
}

/// Why a payment did not go through, as far as the gateway told us.
public enum PaymentFailure: String, Hashable, Sendable, Codable {
    case insufficientFunds = "insufficient_funds"
    /// Debited but flagged as suspected fraud: treated as not paid until reconciled.
    case suspectedFraud = "suspected_fraud"
    /// Debited at the bank but not successful, or reversed after a success.
    case reversed
    case declined
}

/// A payment's outcome as the gateway reports it, through any channel.
public enum PaymentOutcome: Hashable, Sendable {
    case succeeded
    case failed(PaymentFailure)
    case expired
    case cancelled
    /// Not completed yet (only a query says this).
    case pending
}

/// How the service learned an outcome. Only a query or the settlement file — the gateway's
/// record rather than one message — may reverse a success.
public enum OutcomeSource: String, Hashable, Sendable, Codable {
    case callback
    case query
    case settlement
}

/// Why an intent needs a person's attention.
public enum ReviewReason: String, Hashable, Sendable, Codable, CaseIterable {
    case lateSuccessAfterExpiry = "late_success_after_expiry"
    case successAfterFailure = "success_after_failure"
    case reversedAfterSuccess = "reversed_after_success"
    case suspectedFraud = "suspected_fraud"
    case amountMismatch = "amount_mismatch"
    case conflictingOutcome = "conflicting_outcome"
    case unresolvedAfterQueries = "unresolved_after_queries"
}

/// What to do with an outcome, given the intent's current status.
public enum OutcomeDecision: Hashable, Sendable {
    /// Move along the edge `event` to `to`; `review` says whether a person must look at it.
    case apply(to: IntentStatus, event: IntentEventKind, review: ReviewReason?)
    /// The intent already reflects this outcome: nothing changes.
    case alreadyApplied
    /// Not final yet, nothing to change.
    case stillPending
    /// The outcome contradicts a final status that this channel may not change; the status stays
    /// and the intent is flagged for review.
    case conflicting
}

extension IntentStateMachine {
    /// Decides how a gateway outcome changes an intent: out-of-order, repeated and late reports
    /// land here. A success always records the money (it moved), even after a failure or expiry.
    ///
    /// A query's "still pending" never contradicts a final status: queries are sent for open
    /// intents only, so a final outcome recorded by the time the answer is applied came in while
    /// the query was in flight, and the answer is merely out of date.
    public static func decide(current: IntentStatus, outcome: PaymentOutcome, source: OutcomeSource) -> OutcomeDecision {
        switch current {
        case .created, .pending, .unknown:
            switch outcome {
            case .succeeded: return .apply(to: .succeeded, event: .paymentSucceeded, review: nil)
            case .failed(let failure):
                return .apply(to: .failed, event: .paymentFailed, review: failure == .suspectedFraud ? .suspectedFraud : nil)
            case .expired: return .apply(to: .expired, event: .paymentExpired, review: nil)
            case .cancelled: return .apply(to: .cancelled, event: .paymentCancelled, review: nil)
            case .pending:
                return current == .pending ? .stillPending : .apply(to: .pending, event: .gatewayAccepted, review: nil)
            }
        case .succeeded, .refundPending, .refunded, .partiallyRefunded:
            switch outcome {
            case .succeeded: return .alreadyApplied
            case .failed(.reversed) where current == .succeeded && source != .callback:
                return .apply(to: .failed, event: .reversedAfterSuccess, review: .reversedAfterSuccess)
            case .pending where source == .query: return .alreadyApplied
            case .failed, .expired, .cancelled, .pending: return .conflicting
            }
        case .expired, .failed, .cancelled:
            switch outcome {
            case .succeeded:
                return current == .expired
                    ? .apply(to: .succeeded, event: .lateSuccessAfterExpiry, review: .lateSuccessAfterExpiry)
                    : .apply(to: .succeeded, event: .successAfterFailure, review: .successAfterFailure)
            case .expired, .cancelled, .failed(.declined), .failed(.insufficientFunds):
                // No money moved, said another way: the query reports an expired or cancelled
                // payment as failed (`TrangThaiGD 02`), and a callback may say why after a query
                // said failed. Nothing to change, nothing for a person to look at.
                return .alreadyApplied
            case .failed(.suspectedFraud), .failed(.reversed):
                // Debited at the bank and not successful (callback 07, then `TrangThaiGD 04` in
                // query and settlement): a failure already, but not an expiry or a cancellation.
                return current == .failed ? .alreadyApplied : .conflicting
            case .pending where source == .query: return .alreadyApplied
            case .pending: return .conflicting
            }
        }
    }
}
