import FeeReconCore
import FeeReconStore
import Foundation

/// The dossier API's JSON shapes. Amounts are integers of đồng.
struct DossierInput: Decodable {
    var agencyCode: String?
    var procedureCode: String
    var procedureName: String
    var applicantName: String
    var feeLines: [FeeLineInput]

    struct FeeLineInput: Decodable {
        var kind: String
        var code: String
        var name: String
        var amount: Int64
    }

    func details(for code: DossierCode) throws -> DossierDetails {
        if let agencyCode, agencyCode != code.agency.rawValue {
            throw AppError(.validationFailed, "agencyCode: must be the agency part of the dossier code (\(code.agency))", field: "agencyCode")
        }
        do {
            try NameRule.validateCode(procedureCode, field: "procedureCode")
            try NameRule.validate(procedureName, field: "procedureName")
            try NameRule.validate(applicantName, field: "applicantName")
        } catch {
            throw AppError(error)
        }
        var lines: [FeeLine] = []
        for (index, line) in feeLines.enumerated() {
            guard let kind = FeeKind(rawValue: line.kind) else {
                throw AppError(.validationFailed, "feeLines[\(index)].kind: must be \"fee\" (phí) or \"charge\" (lệ phí)", field: "feeLines[\(index)].kind")
            }
            lines.append(FeeLine(kind: kind, code: line.code, name: line.name, amount: Money(dong: line.amount)))
        }
        return DossierDetails(procedureCode: procedureCode, procedureName: procedureName, applicantName: applicantName, feeLines: lines)
    }
}

struct DossierView: Encodable {
    var code: String
    var agency: AgencyView
    var procedure: ProcedureView
    var applicantName: String
    var feeLines: [FeeLineView]
    var amountDue: Int64
    var amountPaid: Int64
    var status: String
    var feesFrozen: Bool
    var payLink: String
    var paymentIntents: [IntentView]
    var createdAt: Date
    var updatedAt: Date

    struct AgencyView: Encodable {
        var code: String
        var name: String
    }

    struct ProcedureView: Encodable {
        var code: String
        var name: String
    }

    struct FeeLineView: Encodable {
        var kind: String
        var kindName: String
        var code: String
        var name: String
        var amount: Int64
    }

    init(_ dossier: DossierRecord, intents: [IntentRecord], endpoints: PublicEndpoints) {
        code = dossier.code.rawValue
        agency = AgencyView(code: dossier.agency.code.rawValue, name: dossier.agency.name)
        procedure = ProcedureView(code: dossier.procedureCode, name: dossier.procedureName)
        applicantName = dossier.applicantName
        feeLines = dossier.feeLines.map {
            FeeLineView(kind: $0.kind.rawValue, kindName: $0.kind.vietnameseName, code: $0.code, name: $0.name, amount: $0.amount.dong)
        }
        amountDue = dossier.amountDue.dong
        amountPaid = dossier.amountPaid.dong
        status = dossier.status.rawValue
        feesFrozen = dossier.feesFrozen
        payLink = endpoints.payLink(token: dossier.payToken)
        paymentIntents = intents.map { IntentView($0, dossierCode: dossier.code) }
        createdAt = dossier.createdAt
        updatedAt = dossier.updatedAt
    }
}

struct IntentView: Encodable {
    var id: String
    var dossierCode: String
    var reference: String
    var status: String
    var amount: Int64
    var amountRefunded: Int64
    var checkoutUrl: String?
    var expiresAt: Date?
    var gatewayTransaction: String?
    var paidAt: Date?
    var needsReview: Bool
    var reviewReason: String?
    var createdAt: Date
    var updatedAt: Date

    init(_ intent: IntentRecord, dossierCode: DossierCode) {
        id = intent.id.uuidString.lowercased()
        self.dossierCode = dossierCode.rawValue
        reference = intent.reference.rawValue
        status = intent.status.rawValue
        amount = intent.amount.dong
        amountRefunded = intent.amountRefunded.dong
        checkoutUrl = intent.checkoutURL
        expiresAt = intent.expiresAt
        gatewayTransaction = intent.gatewayTransaction
        paidAt = intent.paidAt
        needsReview = intent.needsReview
        reviewReason = intent.reviewReason
        createdAt = intent.createdAt
        updatedAt = intent.updatedAt
    }
}

/// The optional body of `POST /v1/dossiers/{code}/payment-intents`.
struct IntentInput: Decodable {
    /// The payer's IP address as the one-stop system saw it, sent to the gateway.
    var payerIp: String?
}
