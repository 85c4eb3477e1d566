import FeeReconCore
import FeeReconStore
import Foundation
import Postgres
import TestSupport
import Testing

/// What the real migrations promise, checked against PostgreSQL itself: append-only history,
/// totals and statuses the database keeps consistent, exactly-once keys, and value checks.
@Suite(.timeLimit(.minutes(5))) struct SchemaTests {
    // MARK: Append-only tables

    static let appendOnlyTables = ["audit_log", "intent_events", "inbound_messages", "outbox_attempts"]

    /// One row in each append-only table.
    static func fillHistory(_ fixture: StoreFixture) async throws {
        let dossier = try await fixture.dossier()
        _ = try await fixture.intent(dossierID: dossier)  // writes its `created` event
        try await fixture.insertMessage(webhookID: "cb_history", code: "00")
        let notification = try await fixture.notification(dossierID: dossier)
        try await fixture.client.withTransaction { db in
            try await OutboxStore.recordAttempt(
                id: notification, startedAt: Date(), duration: .milliseconds(12), httpStatus: 500, error: "HTTP 500",
                delivered: false, retryAfter: .seconds(60), on: db)
        }
        try await fixture.audit()
        for table in appendOnlyTables {
            let count = try await fixture.client.query("SELECT count(*) FROM \(identifier: table)")[0].decode(Int64.self)
            #expect(count == 1, "\(table) has its row")
        }
    }

    static func count(_ table: String, _ fixture: StoreFixture) async throws -> Int64 {
        try await fixture.client.query("SELECT count(*) FROM \(identifier: table)")[0].decode(Int64.self)
    }

    @Test func historyCannotBeUpdatedDeletedOrTruncated() async throws {
        try await withFixture { fixture in
            try await Self.fillHistory(fixture)
            for table in Self.appendOnlyTables {
                let column = switch table {
                case "audit_log": "reason"
                case "intent_events": "actor"
                case "inbound_messages": "reference"
                default: "error"
                }
                #expect(await sqlState {
                    try await fixture.client.execute("UPDATE \(identifier: table) SET \(identifier: column) = 'changed'")
                } == "42501", "UPDATE \(table)")
                #expect(await sqlState { try await fixture.client.execute("DELETE FROM \(identifier: table)") } == "42501", "DELETE \(table)")
                // Inside a transaction too, and whatever else it did is rolled back with it.
                #expect(await sqlState {
                    try await fixture.client.withTransaction { db in
                        try await db.execute("INSERT INTO audit_log (actor_kind, actor_id, action) VALUES ('system', 'test', 'probe')")
                        try await db.execute("DELETE FROM \(identifier: table)")
                    }
                } == "42501", "DELETE \(table) in a transaction")
                // TRUNCATE with CASCADE reaches every table's BEFORE TRUNCATE trigger.
                #expect(await sqlState { try await fixture.client.execute("TRUNCATE \(identifier: table) CASCADE") } == "42501",
                        "TRUNCATE \(table) CASCADE")
                // A plain TRUNCATE of inbound_messages, which exceptions reference, is refused by
                // PostgreSQL before any trigger runs. (Intent events cite their messages without a
                // foreign key since 0008: that these triggers refuse every deletion is what keeps
                // such a reference sound.)
                #expect(await sqlState { try await fixture.client.execute("TRUNCATE \(identifier: table)") }
                    == (table == "inbound_messages" ? "0A000" : "42501"), "TRUNCATE \(table)")
            }
            for table in Self.appendOnlyTables {
                #expect(try await Self.count(table, fixture) == 1, "\(table) keeps its row")
            }
        }
    }

    @Test func apiKeysAreRevokedNeverDeleted() async throws {
        try await withFixture { fixture in
            let key = try await AccessStoreTests.key(fixture)
            _ = try await fixture.client.withTransaction { db in
                try await IdempotencyStore.claim(apiKey: key.id, key: "k-kept", requestHash: [UInt8](repeating: 7, count: 32), on: db)
            }
            #expect(await sqlState { try await fixture.client.execute("DELETE FROM api_keys WHERE id = \(key.id)") } == "42501")
            #expect(await sqlState { try await fixture.client.execute("TRUNCATE api_keys CASCADE") } == "42501")
            let left = try await fixture.client.query("SELECT count(*) FROM api_keys WHERE id = \(key.id)")[0].decode(Int64.self)
            #expect(left == 1)
            let keys = try await fixture.client.query("SELECT count(*) FROM idempotency_keys WHERE api_key_id = \(key.id)")[0].decode(Int64.self)
            #expect(keys == 1)
        }
    }

    // MARK: Dossier totals and status

    @Test func amountDueDifferentFromTheFeeLinesIsRefusedAtCommit() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier(amounts: [100_000, 50_000])
            // A total that differs is refused when the transaction commits, not statement by statement.
            let atCommit = await postgresError {
                try await fixture.client.withTransaction { db in
                    try await db.execute("UPDATE dossier_fee_lines SET amount = 40000 WHERE dossier_id = \(dossierID) AND line_no = 2")
                    // Still inside: the statement itself succeeded.
                    let sum = try await db.query("SELECT sum(amount)::bigint FROM dossier_fee_lines WHERE dossier_id = \(dossierID)")
                    #expect(try sum[0].decode(Int64.self) == 140_000)
                }
            }
            #expect(atCommit?.sqlState == "23514")
            #expect(atCommit?.constraintName == "dossier_total_matches_fee_lines")

            for statement: PostgresQuery in [
                "UPDATE dossiers SET amount_due = 150001 WHERE id = \(dossierID)",
                "DELETE FROM dossier_fee_lines WHERE dossier_id = \(dossierID) AND line_no = 1",
                "INSERT INTO dossier_fee_lines (dossier_id, line_no, kind, code, name, amount) VALUES (\(dossierID), 3, 'fee', 'X', 'X', 1)",
            ] {
                #expect(await sqlState { try await fixture.client.execute(statement) } == "23514")
            }
            // Changing due and lines together in one transaction is fine.
            try await fixture.client.withTransaction { db in
                try await db.execute("UPDATE dossiers SET amount_due = 160000 WHERE id = \(dossierID)")
                try await db.execute("UPDATE dossier_fee_lines SET amount = 60000 WHERE dossier_id = \(dossierID) AND line_no = 2")
            }
            let due = try await fixture.client.query("SELECT amount_due FROM dossiers WHERE id = \(dossierID)")[0].decode(Int64.self)
            #expect(due == 160_000)

            // A new dossier without lines, or with lines that do not add up, never commits.
            let code = StoreFixture.nextCode()
            #expect(await sqlState {
                try await fixture.client.execute("""
                    INSERT INTO dossiers (code, agency_id, procedure_code, procedure_name, applicant_name, amount_due, pay_token)
                    VALUES (\(code.rawValue), \(fixture.agencyID), 'P', 'P', 'A', 1000, \(String(repeating: "t", count: 32)))
                    """)
            } == "23514")
            #expect(await sqlState {
                try await fixture.client.withTransaction { db in
                    let id = try await db.query("""
                        INSERT INTO dossiers (code, agency_id, procedure_code, procedure_name, applicant_name, amount_due, pay_token)
                        VALUES (\(code.rawValue), \(fixture.agencyID), 'P', 'P', 'A', 1000, \(String(repeating: "t", count: 32)))
                        RETURNING id
                        """)[0].decode(Int64.self)
                    try await db.execute("""
                        INSERT INTO dossier_fee_lines (dossier_id, line_no, kind, code, name, amount) VALUES (\(id), 1, 'fee', 'F', 'F', 999)
                        """)
                }
            } == "23514")
            #expect(try await fixture.client.query("SELECT count(*) FROM dossiers WHERE code = \(code.rawValue)")[0].decode(Int64.self) == 0)
        }
    }

    @Test func dossierStatusFollowsTheAmountPaid() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier(amounts: [100_000, 50_000])
            for (paid, status) in [
                (Int64(0), "awaiting_payment"), (149_999, "awaiting_payment"), (150_000, "paid"), (150_001, "overpaid"),
                (300_000, "overpaid"), (1, "awaiting_payment"),
            ] {
                let rows = try await fixture.client.query(
                    "UPDATE dossiers SET amount_paid = \(paid) WHERE id = \(dossierID) RETURNING status")
                #expect(try rows[0].decode(String.self) == status, "paid \(paid)")
            }
            // The status is the database's to compute, never the code's to write.
            #expect(await sqlState { try await fixture.client.execute("UPDATE dossiers SET status = 'paid' WHERE id = \(dossierID)") }
                == "428C9")
            #expect(await sqlState { try await fixture.client.execute("UPDATE dossiers SET amount_paid = -1 WHERE id = \(dossierID)") }
                == "23514")

            // Through the store: a succeeded payment of the whole amount makes it paid.
            let intent = try await fixture.intent(dossierID: dossierID)
            let pending = try await fixture.move(intent, to: .pending, by: .gatewayAccepted)
            try await fixture.move(pending, to: .succeeded, by: .paymentSucceeded)
            let coverage = try await fixture.client.withTransaction { db in try await DossierStore.recomputePaid(dossierID: dossierID, on: db) }
            #expect(coverage.status == .paid)
            #expect(coverage.paid == Money(dong: 150_000))
        }
    }

    // MARK: Exactly-once keys

    @Test func aSecondOpenIntentForADossierIsRefused() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier()
            let first = try await fixture.intent(dossierID: dossierID)
            let second = await postgresError { try await fixture.intent(dossierID: dossierID) }
            #expect(second?.sqlState == "23505")
            #expect(second?.constraintName == "payment_intents_one_open_per_dossier")

            // pending and unknown are open as well.
            let pending = try await fixture.move(first, to: .pending, by: .gatewayAccepted)
            #expect(await sqlState { try await fixture.intent(dossierID: dossierID) } == "23505")
            let failed = try await fixture.move(pending, to: .failed, by: .paymentFailed)
            // Once the open one is final, a new attempt may open.
            let next = try await fixture.intent(dossierID: dossierID)
            let unknown = try await fixture.move(next, to: .unknown, by: .gatewayUnreachable)
            #expect(await sqlState { try await fixture.intent(dossierID: dossierID) } == "23505")
            // Reopening a final one while another is open is refused too.
            #expect(await sqlState {
                try await fixture.client.execute("UPDATE payment_intents SET status = 'pending' WHERE id = \(failed.id)")
            } == "23505")
            #expect(unknown.status == .unknown)
            // Another dossier is not affected.
            _ = try await fixture.intent(dossierID: try await fixture.dossier())
        }
    }

    @Test func oneFinalInboundMessagePerWebhookIDWhileNonFinalOnesRepeat() async throws {
        try await withFixture { fixture in
            // 01 and 99 are answers after which a retry is processed afresh: they may repeat.
            for code in ["01", "99", "01", "99"] {
                #expect(try await fixture.insertMessage(webhookID: "cb_retry", code: code) != nil)
            }
            let final = try await fixture.insertMessage(webhookID: "cb_retry", code: "00")
            #expect(final != nil)
            // The store's insert yields to the earlier final answer; a plain insert is refused.
            for code in ["00", "02", "03", "04", "94", "95"] {
                #expect(try await fixture.insertMessage(webhookID: "cb_retry", code: code) == nil, "\(code)")
            }
            let refused = await postgresError {
                try await fixture.client.execute("""
                    INSERT INTO inbound_messages (partner_code, webhook_id, message_type, headers, body, result_code, reply_body)
                    VALUES ('BTH', 'cb_retry', 'KETQUA', '[]', '\\x7b7d'::bytea, '02', '\\x7b7d'::bytea)
                    """)
            }
            #expect(refused?.sqlState == "23505")
            #expect(refused?.constraintName == "inbound_messages_final_once")
            // A non-final retry after the final one is still stored (and answered from the final one).
            #expect(try await fixture.insertMessage(webhookID: "cb_retry", code: "99") != nil)
            let rows = try await fixture.client.query("""
                SELECT result_code, is_final FROM inbound_messages WHERE webhook_id = 'cb_retry' ORDER BY id
                """).decode((String, Bool).self)
            #expect(rows.map(\.0) == ["01", "99", "01", "99", "00", "99"])
            #expect(rows.filter(\.1).count == 1)
            let answer = try await fixture.client.withConnection { db in
                try await InboundMessageStore.finalAnswer(partner: StoreFixture.partner, webhookID: "cb_retry", on: db)
            }
            #expect(answer?.code == "00")

            // The same webhook-id from another partner is another message.
            let other = fixture.message(webhookID: "cb_retry", code: "00", partner: PartnerCode(rawValue: "HNI")!)
            #expect(try await fixture.client.withConnection { db in try await InboundMessageStore.insert(other, on: db) } != nil)
        }
    }

    // MARK: Value checks

    /// Statements each violating one CHECK constraint; `$D` is a dossier id, `$I` an intent id.
    static let refusedValues: [(String, String)] = [
        ("zero fee line", "UPDATE dossier_fee_lines SET amount = 0 WHERE dossier_id = $D"),
        ("negative fee line", "UPDATE dossier_fee_lines SET amount = -5 WHERE dossier_id = $D"),
        ("fee line over 10^12", "UPDATE dossier_fee_lines SET amount = 1000000000001 WHERE dossier_id = $D"),
        ("zero amount due", "UPDATE dossiers SET amount_due = 0 WHERE id = $D"),
        ("negative amount due", "UPDATE dossiers SET amount_due = -150000 WHERE id = $D"),
        ("amount due over 10^12", "UPDATE dossiers SET amount_due = 1000000000001 WHERE id = $D"),
        ("zero intent amount", "UPDATE payment_intents SET amount = 0 WHERE id = '$I'"),
        ("negative intent amount", "UPDATE payment_intents SET amount = -1 WHERE id = '$I'"),
        ("intent amount over 10^12", "UPDATE payment_intents SET amount = 1000000000001 WHERE id = '$I'"),
        ("refunded more than paid", "UPDATE payment_intents SET amount_refunded = amount + 1 WHERE id = '$I'"),
        ("negative refunded", "UPDATE payment_intents SET amount_refunded = -1 WHERE id = '$I'"),
        ("unknown intent status", "UPDATE payment_intents SET status = 'paid' WHERE id = '$I'"),
        ("unknown fee kind", "UPDATE dossier_fee_lines SET kind = 'tax' WHERE dossier_id = $D"),
        ("unknown event source", "INSERT INTO intent_events (intent_id, kind, to_status, source) VALUES ('$I', 'created', 'created', 'browser')"),
        ("unknown outbox status", "UPDATE outbox_notifications SET status = 'sent'"),
        ("unknown exception status",
         "INSERT INTO exceptions (kind, status, intent_id) VALUES ('amount_mismatch', 'closed', '$I')"),
        ("negative exception amount", "INSERT INTO exceptions (kind, intent_id, amount) VALUES ('amount_mismatch', '$I', -1)"),
        ("review flag without a reason", "UPDATE payment_intents SET needs_review = true WHERE id = '$I'"),
        ("malformed reference", "UPDATE payment_intents SET reference = 'PI-1' WHERE id = '$I'"),
        // The constraints of 0004, which say with a length bound what 0001 said with `{m,n}`.
        ("empty reference", "UPDATE payment_intents SET reference = '' WHERE id = '$I'"),
        ("reference of 21", "UPDATE payment_intents SET reference = repeat('A', 21) WHERE id = '$I'"),
        ("non-ASCII reference", "UPDATE payment_intents SET reference = 'PIĐ1' WHERE id = '$I'"),
        ("partner code of 17", "UPDATE payment_intents SET partner_code = repeat('B', 17) WHERE id = '$I'"),
        ("agency partner code with a dash", "UPDATE agencies SET partner_code = 'BT-H'"),
        ("webhook-id of 65",
         "INSERT INTO inbound_messages (partner_code, webhook_id, message_type, headers, body, result_code, reply_body) VALUES ('BTH', repeat('w', 65), 'KETQUA', '[]', '', '00', '')"),
        ("webhook-id with a slash",
         "INSERT INTO inbound_messages (partner_code, webhook_id, message_type, headers, body, result_code, reply_body) VALUES ('BTH', 'wh/1', 'KETQUA', '[]', '', '00', '')"),
        ("empty webhook-id",
         "INSERT INTO inbound_messages (partner_code, webhook_id, message_type, headers, body, result_code, reply_body) VALUES ('BTH', '', 'KETQUA', '[]', '', '00', '')"),
        ("event kind in capitals", "INSERT INTO intent_events (intent_id, kind, to_status, source) VALUES ('$I', 'Created', 'created', 'api')"),
        ("event kind of 65", "INSERT INTO intent_events (intent_id, kind, to_status, source) VALUES ('$I', repeat('k', 65), 'created', 'api')"),
        ("outbox message id with a space", "UPDATE outbox_notifications SET message_id = 'msg 1'"),
        ("outbox message id of 65", "UPDATE outbox_notifications SET message_id = repeat('m', 65)"),
        ("audit action starting with a digit", "INSERT INTO audit_log (actor_kind, actor_id, action) VALUES ('system', 'x', '1probe')"),
        ("audit action of 65", "INSERT INTO audit_log (actor_kind, actor_id, action) VALUES ('system', 'x', repeat('a', 65))"),
        ("api key prefix of 7", "INSERT INTO api_keys (id, prefix, secret_sha256, name) VALUES (gen_random_uuid(), 'abcdefg', sha256(''), 'k')"),
        ("unknown actor kind", "INSERT INTO audit_log (actor_kind, actor_id, action) VALUES ('robot', 'x', 'probe')"),
    ]

    @Test func checkConstraintsRefuseBadValues() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier()
            let intent = try await fixture.intent(dossierID: dossierID)
            _ = try await fixture.notification(dossierID: dossierID)
            for (name, template) in Self.refusedValues {
                let sql = template.replacingOccurrences(of: "$D", with: String(dossierID))
                    .replacingOccurrences(of: "$I", with: intent.id.uuidString.lowercased())
                let error = await postgresError { try await fixture.client.execute(PostgresQuery(unsafeSQL: sql)) }
                #expect(error?.sqlState == "23514", "\(name): \(error.map { $0.sqlState ?? "-" } ?? "accepted")")
                // A CHECK constraint refused it, at once — not the deferred total check at commit.
                #expect(error?.constraintName != "dossier_total_matches_fee_lines", "\(name)")
            }
            // Nothing of it stuck.
            let stored = try await fixture.client.withConnection { db in try await IntentStore.intent(id: intent.id, on: db) }
            #expect(stored == intent)
        }
    }

    @Test func largestAmountsAreAccepted() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier(amounts: [1_000_000_000_000])
            let intent = try await fixture.intent(dossierID: dossierID, amount: 1_000_000_000_000)
            #expect(intent.amount == Money(dong: 1_000_000_000_000))
            #expect(try await fixture.client.query("SELECT amount_due FROM dossiers WHERE id = \(dossierID)")[0].decode(Int64.self)
                == 1_000_000_000_000)
        }
    }

    // MARK: Migrations

    /// The repository's migrations, applied to an empty database and then again: the second run
    /// applies nothing and changes nothing.
    @Test func realMigrationsTwiceAreANoOp() async throws {
        try await withTestDatabase { database in
            let migrator = Migrator()
            let files = try migrator.load()
            #expect(files.count >= 3)
            let first = try await migrator.migrate(client: database.client, logger: .test())
            #expect(first.map(\.fileName) == files.map(\.fileName))
            let before = try await Self.schemaFingerprint(database.client)

            let second = try await migrator.migrate(client: database.client, logger: .test())
            #expect(second.isEmpty)
            #expect(try await Self.schemaFingerprint(database.client) == before)
            let status = try await migrator.status(client: database.client, logger: .test())
            #expect(status.count == files.count)
            #expect(status.allSatisfy { if case .applied = $0.state { true } else { false } })
            let recorded = try await database.client.query("SELECT count(*) FROM schema_migrations")[0].decode(Int64.self)
            #expect(recorded == Int64(files.count))
        }
        // And on a database cloned from the migrated template, as every other test uses.
        try await withMigratedTestDatabase { database in
            let applied = try await Migrator().migrate(client: database.client, logger: .test())
            #expect(applied.isEmpty)
        }
    }

    /// Every table, column, index, constraint and trigger of the public schema, as text.
    static func schemaFingerprint(_ client: PostgresClient) async throws -> [String] {
        try await client.query("""
            SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
            UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'public'::regnamespace
            UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
            ORDER BY 1
            """).decode(String.self)
    }
}
