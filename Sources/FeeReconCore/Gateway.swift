/// The payment gateway as the domain sees it: what can be asked of it and what it can answer, in
/// the service's own terms. One implementation per wire protocol (the national portal first);
/// domain code never sees a wire field name.
public protocol PaymentGateway: Sendable {
    /// Encodes a create request into the exact bytes that will be sent. The caller stores them with
    /// the intent before calling `create(encoded:)`, so a retry resends the very same request.
    func encodeCreate(_ request: CreatePaymentRequest) throws(GatewayError) -> [UInt8]

    /// Sends an encoded create request. Throws only when the gateway's answer is unknown (timeout,
    /// unreachable, unsigned or unreadable reply); a definite refusal is a `.rejected` result.
    func create(encoded: [UInt8], partner: PartnerCode) async throws(GatewayError) -> CreatePaymentResult

    /// Asks the gateway for a payment's current status.
    func query(reference: PaymentReference, partner: PartnerCode) async throws(GatewayError) -> PaymentStatusReport

    /// Asks for a full or partial refund of a succeeded payment; its outcome arrives later as a
    /// refund result notification.
    func refund(_ request: RefundRequest) async throws(GatewayError) -> RefundRequestResult

    /// Fetches and verifies one settlement day's file, handing every row to `row` in file order.
    /// The whole file is rejected (throws after the last row) if its trailer does not add up, so
    /// callers stage rows in a transaction and commit only when this returns.
    func fetchSettlement(
        day: CivilDate, partner: PartnerCode, row: (SettlementRow) async throws -> Void
    ) async throws -> SettlementSummary
}

/// Why the gateway could not give a definite answer. None of these is evidence about a payment.
public struct GatewayError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        /// No answer within the timeout: the request may or may not have been processed.
        case timeout
        /// The gateway could not be reached (DNS, connect, TLS).
        case unreachable
        /// The reply was unsigned, badly signed or stale.
        case badReplySignature = "bad_reply_signature"
        /// The reply was signed but could not be understood.
        case malformedReply = "malformed_reply"
        /// The request could not be built from the given values.
        case invalidRequest = "invalid_request"
        /// The gateway answered with a failure code that carries no outcome (e.g. 99).
        case gatewayFailure = "gateway_failure"
        /// The settlement file is not available yet.
        case notAvailable = "not_available"
        /// The settlement file does not add up (trailer, row format).
        case invalidSettlementFile = "invalid_settlement_file"
    }

    public var kind: Kind
    /// A short explanation without secrets or personal data.
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "GatewayError(\(kind.rawValue)): \(detail)" }
}

/// Everything needed to open a payment at the gateway for one dossier.
public struct CreatePaymentRequest: Hashable, Sendable {
    public var partner: PartnerCode
    public var reference: PaymentReference
    public var amount: Money
    public var requestedAt: VietnamTime
    public var expiresAt: VietnamTime?
    public var payerAddress: String
    public var description: String
    public var returnURL: String
    public var notifyURL: String
    public var dossier: DossierCode
    public var procedureCode: String
    public var procedureName: String
    public var agencyCode: AgencyCode
    public var agencyName: String
    public var applicantName: String
    public var feeLines: [FeeLine]
    /// `vi` or `en`.
    public var language: String

    public init(
        partner: PartnerCode, reference: PaymentReference, amount: Money, requestedAt: VietnamTime,
        expiresAt: VietnamTime? = nil, payerAddress: String, description: String, returnURL: String,
        notifyURL: String, dossier: DossierCode, procedureCode: String, procedureName: String,
        agencyCode: AgencyCode, agencyName: String, applicantName: String, feeLines: [FeeLine], language: String = "vi"
    ) {
        self.partner = partner
        self.reference = reference
        self.amount = amount
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
        self.payerAddress = payerAddress
        self.description = description
        self.returnURL = returnURL
        self.notifyURL = notifyURL
        self.dossier = dossier
        self.procedureCode = procedureCode
        self.procedureName = procedureName
        self.agencyCode = agencyCode
        self.agencyName = agencyName
        self.applicantName = applicantName
        self.feeLines = feeLines
        self.language = language
    }
}

/// The gateway's definite answer to a create request.
public enum CreatePaymentResult: Hashable, Sendable {
    case accepted(gatewayTransaction: String, checkoutURL: String, expiresAt: VietnamTime)
    case rejected(GatewayRejection)
}

/// A definite refusal from the gateway.
public enum GatewayRejection: Hashable, Sendable {
    case malformedRequest
    case amountMismatch
    case duplicateWithDifferentContent
    case notFound
    case originalNotSuccessful
    case signatureRejected
    /// A result code this adapter does not know; kept verbatim for a person to read.
    case unrecognized(code: String)
}

/// A payment's status at the gateway, from a query.
public struct PaymentStatusReport: Hashable, Sendable {
    public enum Status: Hashable, Sendable {
        case known(PaymentOutcome)
        /// The gateway has no transaction with this reference.
        case notFound
        /// A refund is in progress or was sent; the payment itself succeeded.
        case refundInProgress
        case refundRejected
        /// A status code this adapter does not know — never guessed.
        case unrecognized(code: String)
    }

    public var reference: PaymentReference
    public var status: Status
    public var gatewayTransaction: String?
    public var amount: Money?
    public var amountRefunded: Money
    public var bankCode: String?
    public var occurredAt: VietnamTime?

    public init(
        reference: PaymentReference, status: Status, gatewayTransaction: String? = nil, amount: Money? = nil,
        amountRefunded: Money = .zero, bankCode: String? = nil, occurredAt: VietnamTime? = nil
    ) {
        self.reference = reference
        self.status = status
        self.gatewayTransaction = gatewayTransaction
        self.amount = amount
        self.amountRefunded = amountRefunded
        self.bankCode = bankCode
        self.occurredAt = occurredAt
    }
}

/// A request to give money back for a succeeded payment.
public struct RefundRequest: Hashable, Sendable {
    public var partner: PartnerCode
    public var requestID: RefundRequestID
    public var reference: PaymentReference
    public var gatewayTransaction: String
    /// Full (the whole payment) or partial.
    public var isFull: Bool
    public var amount: Money
    public var requestedBy: String
    public var reason: String
    public var requestedAt: VietnamTime

    public init(
        partner: PartnerCode, requestID: RefundRequestID, reference: PaymentReference, gatewayTransaction: String,
        isFull: Bool, amount: Money, requestedBy: String, reason: String, requestedAt: VietnamTime
    ) {
        self.partner = partner
        self.requestID = requestID
        self.reference = reference
        self.gatewayTransaction = gatewayTransaction
        self.isFull = isFull
        self.amount = amount
        self.requestedBy = requestedBy
        self.reason = reason
        self.requestedAt = requestedAt
    }
}

public enum RefundRequestResult: Hashable, Sendable {
    case accepted(refundTransaction: String)
    case rejected(GatewayRejection)
}

/// A notification the gateway pushed to the service, verified and decoded.
public enum GatewayNotification: Hashable, Sendable {
    case paymentResult(PaymentResultNotice)
    case refundResult(RefundResultNotice)
}

/// The outcome of a payment as a notification reports it.
public enum ReportedOutcome: Hashable, Sendable {
    case known(PaymentOutcome)
    /// A result code this adapter does not know — kept and flagged, never guessed.
    case unrecognized(code: String)
}

public struct PaymentResultNotice: Hashable, Sendable {
    public var partner: PartnerCode
    public var reference: PaymentReference
    public var gatewayTransaction: String
    public var amount: Money
    public var outcome: ReportedOutcome
    public var bankCode: String?
    public var occurredAt: VietnamTime
    public var dossier: String?
    /// 1-based delivery attempt.
    public var attempt: Int

    public init(
        partner: PartnerCode, reference: PaymentReference, gatewayTransaction: String, amount: Money,
        outcome: ReportedOutcome, bankCode: String?, occurredAt: VietnamTime, dossier: String?, attempt: Int
    ) {
        self.partner = partner
        self.reference = reference
        self.gatewayTransaction = gatewayTransaction
        self.amount = amount
        self.outcome = outcome
        self.bankCode = bankCode
        self.occurredAt = occurredAt
        self.dossier = dossier
        self.attempt = attempt
    }
}

public struct RefundResultNotice: Hashable, Sendable {
    public var partner: PartnerCode
    public var requestID: String
    public var reference: PaymentReference
    public var gatewayTransaction: String
    public var refundTransaction: String
    public var refundAmount: Money
    public var completed: Bool
    public var occurredAt: VietnamTime
    public var attempt: Int

    public init(
        partner: PartnerCode, requestID: String, reference: PaymentReference, gatewayTransaction: String,
        refundTransaction: String, refundAmount: Money, completed: Bool, occurredAt: VietnamTime, attempt: Int
    ) {
        self.partner = partner
        self.requestID = requestID
        self.reference = reference
        self.gatewayTransaction = gatewayTransaction
        self.refundTransaction = refundTransaction
        self.refundAmount = refundAmount
        self.completed = completed
        self.occurredAt = occurredAt
        self.attempt = attempt
    }
}

/// How the service answers a notification; the adapter turns it into the wire's result code.
public enum NotificationAnswer: Hashable, Sendable {
    /// Applied and committed.
    case applied
    /// Already applied earlier; nothing changed.
    case alreadyApplied
    /// The reference is not ours; kept for reconciliation.
    case unknownReference
    /// The amount differs from the intent; kept and flagged, not marked paid.
    case amountMismatch
    /// The message could not be understood.
    case malformed(String)
    /// Something failed on our side; the gateway should retry.
    case failure
}

/// One row of a settlement file.
public struct SettlementRow: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case payment
        case refund
    }

    public enum Status: Hashable, Sendable {
        case succeeded
        case pending
        case failed
        case reversed
        case refundInProgress
        case refundSent
        case refundRejected
        case unrecognized(code: String)
    }

    /// 1-based line number in the file (the header is line 1).
    public var line: Int
    public var day: CivilDate
    public var partner: String
    public var reference: String
    public var dossier: String
    public var procedureCode: String
    public var gatewayTransaction: String
    public var bankCode: String
    public var kind: Kind
    public var occurredAt: VietnamTime
    public var postedAt: VietnamTime
    public var amount: Money
    public var feeAmount: Money?
    public var chargeAmount: Money?
    public var currency: String
    public var status: Status
    public var beneficiaryAccount: String
    public var beneficiaryBank: String

    public init(
        line: Int, day: CivilDate, partner: String, reference: String, dossier: String, procedureCode: String,
        gatewayTransaction: String, bankCode: String, kind: Kind, occurredAt: VietnamTime, postedAt: VietnamTime,
        amount: Money, feeAmount: Money?, chargeAmount: Money?, currency: String, status: Status,
        beneficiaryAccount: String, beneficiaryBank: String
    ) {
        self.line = line
        self.day = day
        self.partner = partner
        self.reference = reference
        self.dossier = dossier
        self.procedureCode = procedureCode
        self.gatewayTransaction = gatewayTransaction
        self.bankCode = bankCode
        self.kind = kind
        self.occurredAt = occurredAt
        self.postedAt = postedAt
        self.amount = amount
        self.feeAmount = feeAmount
        self.chargeAmount = chargeAmount
        self.currency = currency
        self.status = status
        self.beneficiaryAccount = beneficiaryAccount
        self.beneficiaryBank = beneficiaryBank
    }
}

/// A verified settlement file's trailer and provenance.
public struct SettlementSummary: Hashable, Sendable {
    public var day: CivilDate
    public var rowCount: Int
    /// Sum of successful payment rows.
    public var paymentTotal: Money
    /// Sum of successful refund rows.
    public var refundTotal: Money
    /// SHA-256 of the file's exact bytes, hex.
    public var sha256: String
    public var byteCount: Int

    public init(day: CivilDate, rowCount: Int, paymentTotal: Money, refundTotal: Money, sha256: String, byteCount: Int) {
        self.day = day
        self.rowCount = rowCount
        self.paymentTotal = paymentTotal
        self.refundTotal = refundTotal
        self.sha256 = sha256
        self.byteCount = byteCount
    }
}
