import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres

/// Registering and updating dossiers for the one-stop system.
public struct DossierService: Sendable {
    let database: PostgresClient
    let logger: Logger

    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    public enum Upserted: Sendable {
        case created(DossierRecord)
        case updated(DossierRecord)
        case unchanged(DossierRecord)
    }

    /// Creates the dossier or replaces its details. Fee lines are frozen once a payment has
    /// succeeded, and do not change while a payment is open (the citizen may be paying the old
    /// amount at the gateway right now).
    public func upsert(
        code: DossierCode, details: DossierDetails, client: APIClient, requestID: String
    ) async throws -> Upserted {
        let total: Money
        do {
            total = try FeeLine.validatedTotal(of: details.feeLines)
        } catch {
            throw AppError(error)
        }
        // The first PUT of a code has no row to lock: two at once both insert, and the second
        // insert fails on the code's unique key. That one runs again, finds the row committed by
        // the first, and takes the update path like any later PUT.
        do {
            return try await upsertOnce(code: code, details: details, total: total, client: client, requestID: requestID)
        } catch let error as PostgresError where error.isUniqueViolation && error.constraintName == "dossiers_code_key" {
            return try await upsertOnce(code: code, details: details, total: total, client: client, requestID: requestID)
        }
    }

    private func upsertOnce(
        code: DossierCode, details: DossierDetails, total: Money, client: APIClient, requestID: String
    ) async throws -> Upserted {
        try await database.withTransaction { db in
            guard let agency = try await DossierStore.agency(code: code.agency, on: db) else {
                throw AppError(.validationFailed, "code: agency \(code.agency) is not registered with this service", field: "code")
            }
            guard client.mayAct(for: agency.id) else {
                throw AppError(.forbidden, "this API key may not act for agency \(code.agency)")
            }
            let actor = client.id.uuidString.lowercased()
            if let existing = try await DossierStore.dossier(code: code, forUpdate: true, on: db) {
                let current = DossierDetails(
                    procedureCode: existing.procedureCode, procedureName: existing.procedureName,
                    applicantName: existing.applicantName, feeLines: existing.feeLines)
                if current == details { return .unchanged(existing) }
                let succeeded = try await IntentStore.hasSucceededPayment(dossierID: existing.id, on: db)
                if existing.feesFrozen || succeeded {
                    throw AppError(.feeLinesFrozen, "dossier \(code) has a succeeded payment; its fee lines can no longer change")
                }
                if let open = try await IntentStore.openIntent(dossierID: existing.id, on: db) {
                    throw AppError(
                        .paymentInProgress,
                        "dossier \(code) has an open payment (\(open.status.rawValue)); change it after that payment ends")
                }
                try await DossierStore.replaceDetails(dossierID: existing.id, details: details, amountDue: total, on: db)
                try await AuditStore.record(
                    actor: .apiKey, actorID: actor, action: "dossier.updated", agencyID: agency.id, subject: code.rawValue,
                    detail: ["amount_due": "\(total.dong)"], requestID: requestID, on: db)
                return .updated(try await DossierStore.dossier(id: existing.id, on: db)!)
            }
            let id = try await DossierStore.insertDossier(
                code: code, agencyID: agency.id, details: details, amountDue: total, payToken: SecureRandom.token(bytes: 32), on: db)
            try await AuditStore.record(
                actor: .apiKey, actorID: actor, action: "dossier.created", agencyID: agency.id, subject: code.rawValue,
                detail: ["amount_due": "\(total.dong)"], requestID: requestID, on: db)
            return .created(try await DossierStore.dossier(id: id, on: db)!)
        }
    }

    /// The dossier if the client may see it; a dossier of another agency is reported as absent.
    public func dossier(code: DossierCode, client: APIClient) async throws -> (DossierRecord, [IntentRecord])? {
        try await database.withConnection { db in
            guard let dossier = try await DossierStore.dossier(code: code, on: db), client.mayAct(for: dossier.agency.id) else {
                return nil
            }
            return (dossier, try await IntentStore.intents(dossierID: dossier.id, on: db))
        }
    }
}
