import Cryptography
import FeeReconCore
@testable import FeeReconServer
import FeeReconStore
import Foundation
import Logging
import Postgres
import TestSupport
import Testing

/// The group commit of the gateway's acceptances (`PaymentService.record`) against the real
/// PostgreSQL: every acceptance gets its own answer, whatever the others in its group do.
@Suite(.timeLimit(.minutes(5))) struct AcceptanceGroupTests {
    static let partner = PartnerCode(rawValue: "BTH")!

    /// `count` new intents in `created`, each for a dossier of its own.
    static func createdIntents(_ count: Int, on client: PostgresClient) async throws -> [IntentRecord] {
        let agency = try await client.withConnection { db in
            try await DossierStore.upsertAgency(code: AgencyCode(rawValue: "000.00.15.H10")!, name: "Sở Tư pháp", partner: partner, on: db)
        }
        var intents: [IntentRecord] = []
        var generator = SystemRandomNumberGenerator()
        for i in 0..<count {
            let line = FeeLine(kind: .fee, code: "L0", name: "Lệ phí", amount: Money(dong: 50_000))
            let intent = try await client.withTransaction { db in
                let dossier = try await DossierStore.insertDossier(
                    code: DossierCode(rawValue: "000.00.15.H10-230530-" + String(format: "%04d", i + 1))!, agencyID: agency.id,
                    details: DossierDetails(procedureCode: "1.001234", procedureName: "Cấp bản sao", applicantName: "Nguyễn Văn A", feeLines: [line]),
                    amountDue: Money(dong: 50_000), payToken: SecureRandom.token(bytes: 32), on: db)
                return try await IntentStore.insert(
                    id: UUID(), partner: partner, reference: PaymentReference.random(using: &generator), dossierID: dossier,
                    amount: Money(dong: 50_000), createRequest: Array("{}".utf8), source: .api, actor: nil, on: db)
            }
            intents.append(intent)
        }
        return intents
    }

    static func acceptance(_ intent: IntentRecord, txn: String) -> IntentStore.Acceptance {
        IntentStore.Acceptance(
            intent: intent, gatewayTransaction: txn, checkoutURL: "https://gw.example/pay/\(txn)",
            expiresAt: Date(timeIntervalSince1970: 1_700_000_900), updatedAt: Date(), completion: nil)
    }

    @Test func aRowTheDatabaseRefusesFailsAloneAndTheOthersAreRecorded() async throws {
        try await withMigratedTestDatabase(maximumConnections: 4) { database in
            let intents = try await Self.createdIntents(4, on: database.client)
            // The first intent already holds gateway transaction GD-TAKEN; the third asks for it too.
            let taken = try #require(try await PaymentService.record(
                [Self.acceptance(intents[0], txn: "GD-TAKEN")], database: database.client, logger: .test())[0].get())
            #expect(taken.status == .pending)
            let answers = await PaymentService.record(
                [Self.acceptance(intents[1], txn: "GD-B"), Self.acceptance(intents[2], txn: "GD-TAKEN"),
                 Self.acceptance(intents[3], txn: "GD-D"), Self.acceptance(intents[1], txn: "GD-B")],
                database: database.client, logger: .test())
            #expect(answers.count == 4)
            #expect((try? answers[0].get())??.gatewayTransaction == "GD-B")
            guard case .failure(let error) = answers[1] else { Issue.record("the duplicate gateway transaction was recorded"); return }
            #expect((error as? PostgresError)?.isUniqueViolation == true)
            #expect((try? answers[2].get())??.gatewayTransaction == "GD-D")
            // Asked twice in one group: the first counts, the second is told the row moved on.
            #expect((try? answers[3].get()) == .some(nil))

            let statuses = try await database.client.query("""
                SELECT gateway_txn, status FROM payment_intents ORDER BY gateway_txn NULLS LAST
                """).map { "\(try $0.decode(column: 0, as: String?.self) ?? "-") \(try $0.decode(column: 1, as: String.self))" }
            #expect(statuses == ["GD-B pending", "GD-D pending", "GD-TAKEN pending", "- created"])
            let events = try await database.client.query("SELECT count(*) FROM intent_events WHERE kind = 'gateway_accepted'")[0]
                .decode(Int64.self)
            #expect(events == 3)
        }
    }

    @Test func anUnreachableDatabaseIsEveryAcceptancesAnswer() async throws {
        try await withMigratedTestDatabase(maximumConnections: 4) { database in
            let intents = try await Self.createdIntents(3, on: database.client)
            // A port nothing listens on: the pool cannot connect. Not a row's fault, so the group is
            // not tried row by row: every acceptance is answered with the failure.
            var configuration = PostgresConfiguration(host: "127.0.0.1", port: 1, username: "postgres", database: database.name)
            configuration.connectTimeout = .seconds(1)
            let unreachable = PostgresClient(configuration: configuration, logger: .test())
            let answers = await PaymentService.record(
                intents.enumerated().map { Self.acceptance($1, txn: "GD-\($0)") }, database: unreachable, logger: .test())
            #expect(answers.count == 3)
            for answer in answers {
                guard case .failure(let error) = answer else { Issue.record("recorded without a database"); continue }
                #expect((error as? PostgresError)?.isConnectionError == true, "\(error)")
            }
            // Nothing was written.
            let pending = try await database.client.query("SELECT count(*) FROM payment_intents WHERE status <> 'created'")[0]
                .decode(Int64.self)
            #expect(pending == 0)
        }
    }
}
