import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import Postgres
import TestSupport

/// Rows to test the schema and the stores with, written through the stores themselves on a
/// freshly migrated database (the real `Migrations/`).
struct StoreFixture: Sendable {
    static let partner = PartnerCode(rawValue: "BTH")!

    let database: TestDatabase
    let agencyID: Int64

    var client: PostgresClient { database.client }

    static func make(_ database: TestDatabase) async throws -> StoreFixture {
        let agency = try await database.client.withConnection { db in
            try await DossierStore.upsertAgency(
                code: AgencyCode(rawValue: "000.00.15.H10")!, name: "Sở Tư pháp", partner: partner, on: db)
        }
        return StoreFixture(database: database, agencyID: agency.id)
    }

    private static let serials = Locked(0)

    /// A fresh dossier code of the fixture's agency.
    static func nextCode() -> DossierCode {
        let serial = serials.withLock { value in
            value += 1
            return value
        }
        return DossierCode(rawValue: "000.00.15.H10-230530-" + String(format: "%04d", serial))!
    }

    /// A dossier whose amount due is the sum of `amounts` (one fee line each).
    func dossier(amounts: [Int64] = [100_000, 50_000]) async throws -> Int64 {
        let code = Self.nextCode()
        let lines = amounts.enumerated().map { index, amount in
            FeeLine(kind: index.isMultiple(of: 2) ? .charge : .fee, code: "L\(index)", name: "Dòng \(index)", amount: Money(dong: amount))
        }
        return try await client.withTransaction { db in
            try await DossierStore.insertDossier(
                code: code, agencyID: agencyID,
                details: DossierDetails(procedureCode: "1.001234", procedureName: "Cấp bản sao", applicantName: "Nguyễn Văn A", feeLines: lines),
                amountDue: Money(dong: amounts.reduce(0, +)), payToken: SecureRandom.token(bytes: 32), on: db)
        }
    }

    /// A new intent in `created`, due for its first check at once unless told otherwise.
    func intent(dossierID: Int64, amount: Int64 = 150_000, firstCheck: Duration? = .zero) async throws -> IntentRecord {
        var generator = SystemRandomNumberGenerator()
        return try await client.withTransaction { db in
            try await IntentStore.insert(
                id: UUID(), partner: Self.partner, reference: PaymentReference.random(using: &generator), dossierID: dossierID,
                amount: Money(dong: amount), createRequest: Array("{}".utf8), source: .api, actor: nil, firstCheck: firstCheck, on: db)
        }
    }

    /// Moves an intent along one edge in its own transaction.
    @discardableResult
    func move(_ intent: IntentRecord, to status: IntentStatus, by event: IntentEventKind) async throws -> IntentRecord {
        try await client.withTransaction { db in
            try await IntentStore.transition(intent, to: status, event: event, source: .system, on: db)
        }
    }

    func message(webhookID: String, code: String, partner: PartnerCode = StoreFixture.partner) -> InboundMessageStore.NewMessage {
        InboundMessageStore.NewMessage(
            partner: partner, webhookID: webhookID, messageType: "KETQUA",
            headers: [["webhook-id", webhookID], ["x-partner-code", partner.rawValue]], body: Array(#"{"MaLoi":"00"}"#.utf8),
            reference: nil, intentID: nil, resultCode: code, replyBody: Array(#"{"MaLoi":"\#(code)","MoTaLoi":"x"}"#.utf8))
    }

    @discardableResult
    func insertMessage(webhookID: String, code: String) async throws -> Int64? {
        try await client.withConnection { db in try await InboundMessageStore.insert(message(webhookID: webhookID, code: code), on: db) }
    }

    /// A pending notification, due now.
    func notification(dossierID: Int64) async throws -> Int64 {
        let messageID = "msg_" + SecureRandom.string(length: 20, alphabet: SecureRandom.alphanumeric)
        try await client.withConnection { db in
            try await OutboxStore.enqueue(
                agencyID: agencyID, dossierID: dossierID, intentID: nil, event: "dossier.paid", messageID: messageID,
                payload: Array("{}".utf8), on: db)
        }
        return try await client.query("SELECT id FROM outbox_notifications WHERE message_id = \(messageID)")[0].decode(Int64.self)
    }

    func audit(action: String = "dossier.viewed") async throws {
        try await client.withConnection { db in
            try await AuditStore.record(
                actor: .officer, actorID: "officer-7", action: action, agencyID: agencyID, subject: "000.00.15.H10-230530-0001",
                requestID: "req-1", on: db)
        }
    }
}

/// The SQLSTATE `body` failed with, or nil if it did not fail with a `PostgresError`.
func sqlState<T>(_ body: () async throws -> T) async -> String? {
    do {
        _ = try await body()
        return nil
    } catch let error as PostgresError {
        return error.sqlState
    } catch {
        return nil
    }
}

/// The `PostgresError` `body` failed with, if any.
func postgresError<T>(_ body: () async throws -> T) async -> PostgresError? {
    do {
        _ = try await body()
        return nil
    } catch let error as PostgresError {
        return error
    } catch {
        return nil
    }
}

/// Runs `body` with a fixture on a fresh database migrated with the real `Migrations/`.
func withFixture(maximumConnections: Int = 6, _ body: (StoreFixture) async throws -> Void) async throws {
    try await withMigratedTestDatabase(maximumConnections: maximumConnections) { database in
        try await body(try await StoreFixture.make(database))
    }
}
