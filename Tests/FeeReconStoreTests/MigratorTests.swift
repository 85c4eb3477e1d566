import Cryptography
import FeeReconStore
import Foundation
import Postgres
import TestSupport
import Testing

/// A temporary directory of migration files, removed by `remove()`.
private struct MigrationDirectory {
    let url: URL

    init(_ files: [String: String]) throws {
        url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("feerecon-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, sql) in files { try write(name, sql) }
    }

    func write(_ name: String, _ sql: String) throws {
        try sql.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func delete(_ name: String) throws {
        try FileManager.default.removeItem(at: url.appendingPathComponent(name))
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

private let baseFiles = [
    "0001_create_dossiers.sql": """
        CREATE TABLE dossiers (code text PRIMARY KEY, amount_due bigint NOT NULL CHECK (amount_due >= 0));
        CREATE INDEX dossiers_amount_idx ON dossiers (amount_due);
        """,
    "0002_create_payments.sql": """
        -- Money is BIGINT đồng.
        CREATE TABLE payments (id bigserial PRIMARY KEY, dossier text NOT NULL REFERENCES dossiers, amount bigint NOT NULL);
        INSERT INTO dossiers VALUES ('HS-SEED', 0);
        """,
]

@Suite("Migrator")
struct MigratorTests {
    @Test func appliesInOrderRecordsChecksumsAndSecondRunIsANoOp() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            let first = try await migrator.migrate(client: database.client, logger: .test())
            #expect(first.map(\.fileName) == ["0001_create_dossiers.sql", "0002_create_payments.sql"])

            let recorded = try await database.client.query(
                "SELECT version, name, checksum, applied_at <= now() FROM schema_migrations ORDER BY version")
                .decode((Int64, String, String, Bool).self)
            #expect(recorded.map(\.0) == [1, 2])
            #expect(recorded.map(\.1) == ["create_dossiers", "create_payments"])
            #expect(recorded[0].2 == SHA256.hexDigest(Array(baseFiles["0001_create_dossiers.sql"]!.utf8)))
            #expect(recorded.allSatisfy { $0.3 })

            let second = try await migrator.migrate(client: database.client, logger: .test())
            #expect(second.isEmpty)
            let seeded = try await database.client.query("SELECT count(*) FROM dossiers")[0].decode(Int64.self)
            #expect(seeded == 1, "the second run did not re-run 0002")

            let status = try await migrator.status(client: database.client, logger: .test())
            #expect(status.map(\.fileName) == ["0001_create_dossiers.sql", "0002_create_payments.sql"])
            #expect(status.allSatisfy { if case .applied = $0.state { true } else { false } })
        }
    }

    @Test func newMigrationIsAppliedLater() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            try await migrator.migrate(client: database.client, logger: .test())
            try directory.write("0003_add_receipts.sql", "ALTER TABLE payments ADD COLUMN receipt_no text;")
            #expect(try await migrator.status(client: database.client, logger: .test()).last?.state == .pending)
            let applied = try await migrator.migrate(client: database.client, logger: .test())
            #expect(applied.map(\.version) == [3])
        }
    }

    @Test func editedAppliedMigrationIsRefused() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            try await migrator.migrate(client: database.client, logger: .test())
            try directory.write("0001_create_dossiers.sql", baseFiles["0001_create_dossiers.sql"]! + "\n-- tweak\n")
            try directory.write("0003_more.sql", "CREATE TABLE more (v int);")
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.migrate(client: database.client, logger: .test())
            }
            #expect(error.kind == .edited)
            #expect(error.file == "0001_create_dossiers.sql")
            #expect(error.description.contains("0001_create_dossiers.sql"))
            let more = try await database.client.query("SELECT to_regclass('more') IS NULL")[0].decode(Bool.self)
            #expect(more, "nothing runs once the history is found inconsistent")
            let status = try await migrator.status(client: database.client, logger: .test())
            #expect(status.first?.state == .edited)
        }
    }

    @Test func missingAppliedFileIsRefused() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            try await migrator.migrate(client: database.client, logger: .test())
            try directory.delete("0002_create_payments.sql")
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.migrate(client: database.client, logger: .test())
            }
            #expect(error.kind == .missing)
            #expect(error.file == "0002_create_payments.sql")
        }
    }

    @Test func renamedAppliedFileIsRefused() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            try await migrator.migrate(client: database.client, logger: .test())
            try directory.delete("0002_create_payments.sql")
            try directory.write("0002_payments.sql", baseFiles["0002_create_payments.sql"]!)
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.migrate(client: database.client, logger: .test())
            }
            #expect(error.kind == .renamed)
            #expect(error.file == "0002_payments.sql")
        }
    }

    @Test func fileNumberedBeforeAppliedOnesIsRefused() async throws {
        let directory = try MigrationDirectory([
            "0001_create_dossiers.sql": baseFiles["0001_create_dossiers.sql"]!,
            "0003_c.sql": "CREATE TABLE c (v int);",
        ])
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            try await migrator.migrate(client: database.client, logger: .test())
            try directory.write("0002_b.sql", "CREATE TABLE b (v int);")
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.migrate(client: database.client, logger: .test())
            }
            #expect(error.kind == .outOfOrder)
            #expect(error.file == "0002_b.sql")
        }
    }

    @Test(arguments: ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "abcd_name.sql", "0001_spa ce.sql"])
    func badFileNamesAreRefused(fileName: String) throws {
        let directory = try MigrationDirectory([fileName: "SELECT 1;", "README.md": "not a migration"])
        defer { directory.remove() }
        let error = try #require(throws: MigrationError.self) { try Migrator(directory: directory.url).load() }
        #expect(error.kind == .invalidFileName)
        #expect(error.file == fileName)
    }

    @Test func duplicateVersionsAreRefused() throws {
        let directory = try MigrationDirectory(["0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"])
        defer { directory.remove() }
        let error = try #require(throws: MigrationError.self) { try Migrator(directory: directory.url).load() }
        #expect(error.kind == .duplicateVersion)
        #expect(error.file == "0001_b.sql")
    }

    @Test func missingDirectoryIsRefused() {
        let url = URL(fileURLWithPath: "/nonexistent/feerecon/migrations")
        let error = #expect(throws: MigrationError.self) { try Migrator(directory: url).load() }
        #expect(error?.kind == .unreadableDirectory)
    }

    @Test func failingMigrationRollsBackOnlyItselfAndNamesTheFile() async throws {
        var files = baseFiles
        files["0003_broken.sql"] = "CREATE TABLE half_done (v int);\nALTER TABLE no_such_table ADD COLUMN x int;"
        let directory = try MigrationDirectory(files)
        defer { directory.remove() }
        try await withTestDatabase { database in
            let migrator = Migrator(directory: directory.url)
            let error = try await #require(throws: MigrationError.self) {
                try await migrator.migrate(client: database.client, logger: .test())
            }
            #expect(error.kind == .failed)
            #expect(error.file == "0003_broken.sql")
            #expect(error.underlying?.sqlState == "42P01")
            let versions = try await database.client.query("SELECT version FROM schema_migrations ORDER BY 1").decode(Int.self)
            #expect(versions == [1, 2])
            let halfDone = try await database.client.query("SELECT to_regclass('half_done') IS NULL")[0].decode(Bool.self)
            #expect(halfDone)
        }
    }

    @Test func concurrentMigratorsInOneProcessApplyEachFileOnce() async throws {
        var files = baseFiles
        files["0003_slow.sql"] = "SELECT pg_sleep(0.2); CREATE TABLE slow (v int);"
        let directory = try MigrationDirectory(files)
        defer { directory.remove() }
        try await withTestDatabase(maximumConnections: 4) { database in
            let migrator = Migrator(directory: directory.url)
            let applied = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    let client = PostgresClient(configuration: database.configuration, logger: .test())
                    group.addTask {
                        do {
                            let applied = try await migrator.migrate(client: client, logger: .test())
                            await client.shutdown()
                            return applied.count
                        } catch {
                            await client.shutdown()
                            throw error
                        }
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(applied.sorted() == [0, 0, 0, 3])
            #expect(try await database.client.query("SELECT count(*) FROM schema_migrations")[0].decode(Int64.self) == 3)
        }
    }

    @Test func twoMigrateProcessesLeaveOneConsistentSchema() async throws {
        var files = baseFiles
        files["0003_slow.sql"] = "SELECT pg_sleep(0.3); CREATE TABLE slow (v int);"
        let directory = try MigrationDirectory(files)
        defer { directory.remove() }
        let executable = try FeeReconExecutable.url()
        try await withTestDatabase { database in
            let runs = try (0..<2).map { _ in
                try ChildProcess(executable, ["migrate", "--database-url", database.url, "--migrations", directory.url.path])
            }
            for run in runs { try await run.wait(deadline: .seconds(60)) }
            for run in runs {
                #expect(run.status == 0, "feerecon migrate failed: \(run.output)")
            }
            let outputs = runs.map(\.output)
            #expect(outputs.filter { $0.contains("applied 0003_slow.sql") }.count == 1)
            #expect(outputs.filter { $0.contains("up to date") }.count == 1)
            let versions = try await database.client.query("SELECT version FROM schema_migrations ORDER BY 1").decode(Int.self)
            #expect(versions == [1, 2, 3])
            let seeded = try await database.client.query("SELECT count(*) FROM dossiers")[0].decode(Int64.self)
            #expect(seeded == 1)
        }
    }

    @Test func migratedTemplateDatabasesAreCloned() async throws {
        let directory = try MigrationDirectory(baseFiles)
        defer { directory.remove() }
        let first = try await TestDatabase.createMigrated(migrations: directory.url)
        let second = try await TestDatabase.createMigrated(migrations: directory.url)
        for database in [first, second] {
            let versions = try await database.client.query("SELECT version FROM schema_migrations ORDER BY 1").decode(Int.self)
            #expect(versions == [1, 2])
            try await database.client.execute("INSERT INTO dossiers VALUES (\(database.name), 1)")
        }
        #expect(try await second.client.query("SELECT count(*) FROM dossiers")[0].decode(Int64.self) == 2)
        try await first.drop()
        try await second.drop()
    }
}
