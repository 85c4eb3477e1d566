import FeeReconCore
import Foundation

/// An agency as stored.
public struct AgencyRecord: Sendable, Hashable {
    public var id: Int64
    public var code: AgencyCode
    public var name: String
    public var partner: PartnerCode
}

/// A dossier with its agency and fee lines.
public struct DossierRecord: Sendable, Hashable {
    public var id: Int64
    public var code: DossierCode
    public var agency: AgencyRecord
    public var procedureCode: String
    public var procedureName: String
    public var applicantName: String
    public var amountDue: Money
    public var amountPaid: Money
    public var status: DossierStatus
    public var payToken: String
    public var feesFrozenAt: Date?
    public var feeLines: [FeeLine]
    public var version: Int32
    public var createdAt: Date
    public var updatedAt: Date

    public var feesFrozen: Bool { feesFrozenAt != nil }
}

/// The parts of a dossier the one-stop system sets.
public struct DossierDetails: Sendable, Hashable {
    public var procedureCode: String
    public var procedureName: String
    public var applicantName: String
    public var feeLines: [FeeLine]

    public init(procedureCode: String, procedureName: String, applicantName: String, feeLines: [FeeLine]) {
        self.procedureCode = procedureCode
        self.procedureName = procedureName
        self.applicantName = applicantName
        self.feeLines = feeLines
    }
}

/// A payment intent as stored.
public struct IntentRecord: Sendable, Hashable {
    public var id: UUID
    public var partner: PartnerCode
    public var reference: PaymentReference
    public var dossierID: Int64
    public var amount: Money
    public var status: IntentStatus
    public var gatewayTransaction: String?
    public var checkoutURL: String?
    public var expiresAt: Date?
    public var createRequest: [UInt8]?
    public var amountRefunded: Money
    public var bankCode: String?
    public var paidAt: Date?
    public var reviewReason: String?
    public var version: Int32
    public var createdAt: Date
    public var updatedAt: Date

    public var needsReview: Bool { reviewReason != nil }
}

/// Where a change came from, as recorded on its event.
public enum EventSource: String, Sendable, Hashable {
    case api
    case citizen
    case gatewayReply = "gateway_reply"
    case callback
    case query
    case settlement
    case officer
    case system
}

/// One row of an intent's history.
public struct IntentEventRecord: Sendable, Hashable {
    public var id: Int64
    public var intentID: UUID
    public var kind: String
    public var fromStatus: String?
    public var toStatus: String
    public var source: String
    public var inboundMessageID: Int64?
    public var actor: String?
    public var detail: String
    public var occurredAt: Date
}

/// An authenticated client of the dossier API and the agencies it may act for.
public struct APIClient: Sendable, Hashable {
    public var id: UUID
    public var name: String
    public var agencyIDs: Set<Int64>

    public func mayAct(for agencyID: Int64) -> Bool { agencyIDs.contains(agencyID) }
}

/// Kinds of exceptions the service opens for people to resolve.
public enum ExceptionKind: String, Sendable, Hashable, CaseIterable {
    case amountMismatch = "amount_mismatch"
    case lateSuccessAfterExpiry = "late_success_after_expiry"
    case successAfterFailure = "success_after_failure"
    case reversedAfterSuccess = "reversed_after_success"
    case suspectedFraud = "suspected_fraud"
    case conflictingOutcome = "conflicting_outcome"
    case unknownReference = "unknown_reference"
    case unrecognizedOutcome = "unrecognized_outcome"
    case duplicatePayment = "duplicate_payment"
    case unresolvedIntent = "unresolved_intent"
}

extension ExceptionKind {
    public init(_ reason: ReviewReason) {
        switch reason {
        case .lateSuccessAfterExpiry: self = .lateSuccessAfterExpiry
        case .successAfterFailure: self = .successAfterFailure
        case .reversedAfterSuccess: self = .reversedAfterSuccess
        case .suspectedFraud: self = .suspectedFraud
        case .amountMismatch: self = .amountMismatch
        case .conflictingOutcome: self = .conflictingOutcome
        case .unresolvedAfterQueries: self = .unresolvedIntent
        }
    }
}

/// An open or resolved exception.
public struct ExceptionRecord: Sendable, Hashable {
    public var id: Int64
    public var kind: String
    public var status: String
    public var agencyID: Int64?
    public var dossierID: Int64?
    public var intentID: UUID?
    public var inboundMessageID: Int64?
    public var amount: Money?
    public var detail: String
    public var openedAt: Date
}
