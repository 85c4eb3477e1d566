import Cryptography
import FeeReconCore
import Foundation
import PortalGateway
import Postgres
import TestSupport
import Testing

/// §6 through the adapter: a day with payments, failures, reversals and refunds, read row by row
/// into a staging table the way a caller imports it; the window; a broken trailer; an empty day.
@Suite(.timeLimit(.minutes(5))) struct SettlementAgainstSandboxTests {
    static let day = CivilDate(year: 2026, month: 1, day: 15)!
    static let nextDay = CivilDate(year: 2026, month: 1, day: 16)!

    /// The names of the day's payments and refunds, with their wire ids.
    struct Fixture {
        var references: [String: PaymentReference] = [:]
        var transactions: [String: String] = [:]
        var refunds: [String: String] = [:]
    }

    /// Builds the day through the adapter (creates and refunds) and the control API (outcomes at
    /// times of that day): P1 paid, P2 cancelled, P3 paid and reversed the same day, P4 paid and
    /// reversed the next day, P5 expired, P6 debited-but-reversed (07), P7 still pending; R1 (of P1)
    /// completed, R2 (of P4) rejected, R3 (of P1) still in progress.
    static func buildDay(_ sandbox: SandboxPeer) async throws -> Fixture {
        let gateway = sandbox.adapter()
        let d = day.compact
        var fixture = Fixture()
        for name in ["P1", "P2", "P3", "P4", "P5", "P6", "P7"] {
            let request = Requests.payment(expiresAt: Requests.now.adding(seconds: 3_600))
            fixture.references[name] = request.reference
            fixture.transactions[name] = try await gateway.open(request).transaction
        }
        let t = fixture.transactions
        try await sandbox.outcome(t["P1"]!, "success", at: d + "100000")
        try await sandbox.outcome(t["P2"]!, "cancel", at: d + "110000")
        try await sandbox.outcome(t["P3"]!, "success", at: d + "090000")
        try await sandbox.require(.post, "/transactions/\(t["P3"]!)/reverse", json: #"{"at":"\#(d)150000"}"#)
        try await sandbox.outcome(t["P4"]!, "success", at: d + "120000")
        try await sandbox.require(.post, "/transactions/\(t["P5"]!)/expire", json: #"{"at":"\#(d)130000"}"#)
        try await sandbox.outcome(t["P6"]!, "reversed", at: d + "140000")
        for (name, payment, amount) in [("R1", "P1", Int64(50_000)), ("R2", "P4", 30_000), ("R3", "P1", 10_000)] {
            let result = try await gateway.refund(
                Requests.refund(of: fixture.references[payment]!, transaction: t[payment]!, amount: amount))
            guard case .accepted(let id) = result else { throw TestSupportError("refund \(name) not accepted: \(result)") }
            fixture.refunds[name] = id
        }
        try await sandbox.require(.post, "/refunds/\(fixture.refunds["R1"]!)/complete", json: #"{"at":"\#(d)160000"}"#)
        try await sandbox.require(.post, "/refunds/\(fixture.refunds["R2"]!)/reject", json: #"{"at":"\#(d)170000"}"#)
        try await sandbox.require(.post, "/transactions/\(t["P4"]!)/reverse", json: #"{"at":"\#(nextDay.compact)080000"}"#)
        return fixture
    }

    /// What a caller that imports a file does: every row into a table, in one transaction that
    /// commits only when the whole file verified.
    static func stage(
        _ gateway: PortalGatewayClient, day: CivilDate, into database: TestDatabase
    ) async throws -> (SettlementSummary, [SettlementRow]) {
        var rows: [SettlementRow] = []
        let summary = try await database.client.withTransaction { connection in
            try await gateway.fetchSettlement(day: day, partner: SandboxPeer.partner) { row in
                rows.append(row)
                try await connection.execute("""
                    INSERT INTO staged_rows (day, line, kind, reference, transaction_id, amount, status)
                    VALUES (\(day.compact), \(Int64(row.line)), \(row.kind.rawValue), \(row.reference), \(row.gatewayTransaction),
                            \(row.amount.dong), \("\(row.status)"))
                    """)
            }
        }
        return (summary, rows)
    }

    static func withStaging(_ body: (TestDatabase) async throws -> Void) async throws {
        try await withTestDatabase { database in
            try await database.client.execute("""
                CREATE TABLE staged_rows (day text NOT NULL, line bigint NOT NULL, kind text NOT NULL, reference text NOT NULL,
                                          transaction_id text NOT NULL, amount bigint NOT NULL, status text NOT NULL,
                                          PRIMARY KEY (day, line))
                """)
            try await body(database)
        }
    }

    static func stagedCount(_ database: TestDatabase) async throws -> Int64 {
        try await database.client.query("SELECT count(*) FROM staged_rows")[0].decode(Int64.self)
    }

    @Test func aDayWithPaymentsFailuresReversalsAndRefundsThenItsFaults() async throws {
        try await withSandbox { sandbox in
            try await Self.withStaging { database in
                let fixture = try await Self.buildDay(sandbox)
                let refs = fixture.references, ids = fixture.transactions, refunds = fixture.refunds
                let gateway = sandbox.adapter()
                let (summary, rows) = try await Self.stage(gateway, day: Self.day, into: database)

                // One row per final outcome of the day, in time order; P7 (pending) and R3 (in
                // progress) are not there; P3's same-day success and reversal are one 04 row.
                let expected: [(String, SettlementRow.Kind, String, SettlementRow.Status, Int64)] = [
                    (refs["P1"]!.rawValue, .payment, ids["P1"]!, .succeeded, 150_000),
                    (refs["P2"]!.rawValue, .payment, ids["P2"]!, .failed, 150_000),
                    (refs["P4"]!.rawValue, .payment, ids["P4"]!, .succeeded, 150_000),
                    (refs["P5"]!.rawValue, .payment, ids["P5"]!, .failed, 150_000),
                    (refs["P6"]!.rawValue, .payment, ids["P6"]!, .reversed, 150_000),
                    (refs["P3"]!.rawValue, .payment, ids["P3"]!, .reversed, 150_000),
                    (refs["P1"]!.rawValue, .refund, refunds["R1"]!, .succeeded, 50_000),
                    (refs["P4"]!.rawValue, .refund, refunds["R2"]!, .refundRejected, 30_000),
                ]
                #expect(rows.count == expected.count)
                for (row, want) in zip(rows, expected) {
                    #expect(row.reference == want.0)
                    #expect(row.kind == want.1)
                    #expect(row.gatewayTransaction == want.2)
                    #expect(row.status == want.3)
                    #expect(row.amount == Money(dong: want.4))
                    #expect(row.day == Self.day)
                    #expect(row.partner == "BTH")
                    #expect(row.dossier == Requests.dossier.rawValue)
                    #expect(row.postedAt == VietnamTime(date: Self.nextDay))
                    #expect(row.occurredAt.date == Self.day)
                    switch row.kind {
                    case .payment:
                        #expect(row.feeAmount == Money(dong: 50_000))
                        #expect(row.chargeAmount == Money(dong: 100_000))
                    case .refund:
                        #expect(row.feeAmount == nil && row.chargeAmount == nil)
                    }
                }
                #expect(rows.map(\.line) == Array(2...9))

                // The trailer's totals, and the provenance of the exact bytes.
                #expect(summary.day == Self.day)
                #expect(summary.rowCount == 8)
                #expect(summary.paymentTotal == Money(dong: 300_000))
                #expect(summary.refundTotal == Money(dong: 50_000))
                let bytes = try await sandbox.settlementBytes(Self.day.compact)
                #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\nTONG,8,300000,50000\n"))
                #expect(summary.sha256 == SHA256.hexDigest(bytes))
                #expect(summary.byteCount == bytes.count)
                #expect(try await Self.stagedCount(database) == 8)

                // The next day holds P4's reversal only.
                let (next, nextRows) = try await Self.stage(gateway, day: Self.nextDay, into: database)
                #expect(nextRows.map(\.gatewayTransaction) == [ids["P4"]!])
                #expect(nextRows.map(\.status) == [.reversed])
                #expect(next.rowCount == 1 && next.paymentTotal == .zero && next.refundTotal == .zero)
                #expect(try await Self.stagedCount(database) == 9)

                // Fetched again, the same day is the same file.
                #expect(try await gateway.fetchSettlement(day: Self.day, partner: SandboxPeer.partner) { _ in } == summary)

                // Amounts changed in the file (which stays self-consistent) are read as they are:
                // finding the difference is reconciliation's job, not the reader's.
                try await sandbox.require(.put, "/faults", json: #"{"misstatedSettlementRow":1,"amountChange":1000}"#)
                var changed: [SettlementRow] = []
                let changedSummary = try await gateway.fetchSettlement(day: Self.day, partner: SandboxPeer.partner) { changed.append($0) }
                #expect(changed.filter { $0.kind == .payment }.allSatisfy { $0.amount == Money(dong: 151_000) })
                #expect(changedSummary.paymentTotal == Money(dong: 302_000))
                #expect(changedSummary.refundTotal == Money(dong: 51_000))
                #expect(changedSummary.sha256 != summary.sha256)

                // A file whose trailer does not add up is rejected as a whole: the caller's
                // transaction rolls back and not one of the rows it was handed stays.
                try await sandbox.require(.put, "/faults", json: #"{"settlementBrokenTrailer":1}"#)
                try await database.client.execute("DELETE FROM staged_rows")
                var handed = 0
                let kind = await GatewayError.kind {
                    try await database.client.withTransaction { connection in
                        try await gateway.fetchSettlement(day: Self.day, partner: SandboxPeer.partner) { row in
                            handed += 1
                            try await connection.execute("""
                                INSERT INTO staged_rows (day, line, kind, reference, transaction_id, amount, status)
                                VALUES (\(Self.day.compact), \(Int64(row.line)), \(row.kind.rawValue), \(row.reference),
                                        \(row.gatewayTransaction), \(row.amount.dong), \("\(row.status)"))
                                """)
                        }
                    }
                }
                #expect(kind == .invalidSettlementFile)
                #expect(handed == 8, "every row was handed over before the trailer was checked")
                #expect(try await Self.stagedCount(database) == 0)
                let broken = try await sandbox.settlementBytes(Self.day.compact)
                #expect(String(decoding: broken, as: UTF8.self).hasSuffix("\nTONG,8,301000,50000\n"))
            }
        }
    }

    /// With the 06:00-next-day window on, today's file is `91`: not available yet.
    @Test func beforeTheWindowTheFileIsNotAvailable() async throws {
        try await withSandbox(settings: { $0.settlementWindow = true }) { sandbox in
            let gateway = sandbox.adapter()
            let today = Requests.now.date
            for day in [today, today.adding(days: 1)] {
                #expect(await GatewayError.kind { try await gateway.fetchSettlement(day: day, partner: SandboxPeer.partner) { _ in } }
                    == .notAvailable)
            }
            // A past day is available, and with nothing in it it is empty.
            let empty = try await gateway.fetchSettlement(day: CivilDate(year: 2025, month: 1, day: 1)!, partner: SandboxPeer.partner) { _ in
                Issue.record("a row in an empty day")
            }
            #expect(empty.rowCount == 0)
        }
    }

    /// A day without transactions: the header and `TONG,0,0,0`.
    @Test func anEmptyDay() async throws {
        try await withSharedSandbox { sandbox in
            let gateway = sandbox.adapter()
            let day = Requests.now.date.adding(days: 2)
            var handed = 0
            let summary = try await gateway.fetchSettlement(day: day, partner: SandboxPeer.partner) { _ in handed += 1 }
            let bytes = try await sandbox.settlementBytes(day.compact)
            #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\nTONG,0,0,0\n"))
            #expect(handed == 0)
            #expect(summary.rowCount == 0 && summary.paymentTotal == .zero && summary.refundTotal == .zero)
            #expect(summary.sha256 == SHA256.hexDigest(bytes))
            #expect(summary.byteCount == bytes.count)
        }
    }
}
