/// The true state of a payment at the gateway.
public enum PaymentStatus: String, Sendable, Codable, CaseIterable {
    case pending
    case succeeded
    case failed
    /// Debited at the bank but not successful (`TrangThaiGD 04`).
    case reversed

    /// `TrangThaiGD` of a payment in this state (query replies and settlement rows).
    public var wireStatus: String {
        switch self {
        case .pending: "01"
        case .succeeded: "00"
        case .failed: "02"
        case .reversed: "04"
        }
    }
}

/// What the payer (or the clock) decided on the hosted page; the raw value is the callback's `MaLoi`.
public enum PaymentOutcome: String, Sendable, Codable, CaseIterable {
    case success = "00"
    case cancelled = "24"
    case insufficientFunds = "51"
    case expired = "11"
    /// Debited, then reversed as suspected fraud: callback `07`, query and settlement `04`.
    case debitedReversed = "07"

    var resultingStatus: PaymentStatus {
        switch self {
        case .success: .succeeded
        case .cancelled, .insufficientFunds, .expired: .failed
        case .debitedReversed: .reversed
        }
    }

    /// The form value and control API name of each outcome.
    public var name: String {
        switch self {
        case .success: "success"
        case .cancelled: "cancel"
        case .insufficientFunds: "insufficient-funds"
        case .expired: "expired"
        case .debitedReversed: "reversed"
        }
    }

    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name == name || $0.rawValue == name }) else { return nil }
        self = match
    }
}

/// Something that moves a payment: an outcome while pending, a reversal after success (no
/// callback; reconciliation must notice), or a late success after expiry (the money moved).
enum PaymentEvent: Sendable, Equatable {
    case outcome(PaymentOutcome)
    case reverseAfterSuccess
    case lateSuccessAfterExpiry
}

/// The payment state graph: each allowed edge, and the callback `MaLoi` it sends, if any.
enum PaymentStateMachine {
    struct Transition: Equatable {
        var to: PaymentStatus
        var callback: ResultCode?
    }

    /// The transition for `event` from `status` with `outcome` being the first final outcome
    /// recorded (if any); nil when the edge does not exist.
    static func transition(from status: PaymentStatus, firstOutcome: PaymentOutcome?, on event: PaymentEvent) -> Transition? {
        switch (status, event) {
        case (.pending, .outcome(let outcome)):
            return Transition(to: outcome.resultingStatus, callback: ResultCode(rawValue: outcome.rawValue))
        case (.pending, .reverseAfterSuccess), (.pending, .lateSuccessAfterExpiry):
            return nil
        case (.succeeded, .reverseAfterSuccess):
            return Transition(to: .reversed, callback: nil)
        case (.succeeded, .outcome), (.succeeded, .lateSuccessAfterExpiry):
            return nil
        case (.failed, .lateSuccessAfterExpiry):
            return firstOutcome == .expired ? Transition(to: .succeeded, callback: .success) : nil
        case (.failed, .outcome), (.failed, .reverseAfterSuccess):
            return nil
        case (.reversed, _):
            return nil
        }
    }
}

/// A refund's state: `05` in progress, then `00` completed or `09` rejected.
public enum RefundStatus: String, Sendable, Codable, CaseIterable {
    case pending
    case completed
    case rejected

    public var wireStatus: String {
        switch self {
        case .pending: "05"
        case .completed: "00"
        case .rejected: "09"
        }
    }

    /// The `MaLoi` of the `HOANTIEN` callback announcing this state.
    var callbackCode: ResultCode? {
        switch self {
        case .pending: nil
        case .completed: .success
        case .rejected: .otherError
        }
    }
}

/// How refunds end when no one decides through the control API.
public enum RefundMode: String, Sendable, Codable, CaseIterable {
    /// Completed after the refund delay.
    case complete
    /// Rejected after the refund delay.
    case reject
    /// Left in progress until the control API completes or rejects them.
    case manual
}
