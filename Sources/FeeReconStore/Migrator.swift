import Cryptography
import Foundation
import Logging
import Postgres

/// One forward-only schema change: a file named `NNNN_snake_case.sql`.
public struct Migration: Sendable, Hashable {
    public let version: Int
    /// The snake_case part of the file name.
    public let name: String
    public let fileName: String
    public let sql: String
    /// Lower-case hex SHA-256 of the file's bytes, recorded when applied.
    public let checksum: String
}

/// A migration that cannot be applied, or a history that no longer matches the files. Each case
/// names the file concerned.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The directory is missing or unreadable.
        case unreadableDirectory
        /// A `.sql` file whose name is not `NNNN_snake_case.sql`.
        case invalidFileName
        /// Two files share a version number.
        case duplicateVersion
        /// An applied migration's file changed since it was applied.
        case edited
        /// An applied migration's file is gone.
        case missing
        /// An applied version's file now has a different name.
        case renamed
        /// A pending file is numbered below a migration that is already applied.
        case outOfOrder
        /// The file's SQL failed; its transaction was rolled back.
        case failed
    }

    public let kind: Kind
    /// The file (or directory, for `unreadableDirectory`) the error is about.
    public let file: String
    /// The database error, for `failed`.
    public let underlying: PostgresError?

    init(_ kind: Kind, file: String, underlying: PostgresError? = nil) {
        self.kind = kind
        self.file = file
        self.underlying = underlying
    }

    public var description: String {
        switch kind {
        case .unreadableDirectory: "migrations directory \(file) cannot be read"
        case .invalidFileName: "migration file \(file) is not named NNNN_snake_case.sql"
        case .duplicateVersion: "migration file \(file) reuses a version number"
        case .edited: "migration \(file) was edited after it was applied; add a new migration instead"
        case .missing: "migration \(file) was applied but its file is missing"
        case .renamed: "migration \(file) was applied under another name"
        case .outOfOrder: "migration \(file) is numbered before migrations that are already applied"
        case .failed: "migration \(file) failed: \(underlying.map { "\($0)" } ?? "unknown error")"
        }
    }
}

/// Where a migration stands in a database.
public struct MigrationStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case applied(at: Date)
        case pending
        /// Applied, but the file's checksum no longer matches.
        case edited
        /// Applied, but there is no such file.
        case missing
    }

    public let version: Int
    public let fileName: String
    public let state: State
}

/// Applies `Migrations/NNNN_snake_case.sql` files in order, each in its own transaction,
/// recording version, name, checksum and time in `schema_migrations`.
///
/// The whole run holds a session advisory lock, so processes starting at the same time apply each
/// migration once: the others wait, then find nothing to do. A history that no longer matches the
/// files (an applied file edited, removed or renamed; a new file numbered before applied ones) is
/// refused before anything runs. Files must not contain their own `BEGIN`/`COMMIT`, nor
/// statements that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`).
public struct Migrator: Sendable {
    /// `pg_advisory_lock` key: "FeeRecon" in ASCII.
    static let lockKey: Int64 = 0x4665_6552_6563_6F6E

    public let directory: URL

    /// `directory`, else `$FEERECON_MIGRATIONS`, else the repository's `Migrations/`.
    public init(directory: URL? = nil) {
        self.directory = directory ?? Self.defaultDirectory
    }

    /// `$FEERECON_MIGRATIONS`, else `Migrations/` at the root of the source tree this was built from.
    public static var defaultDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["FEERECON_MIGRATIONS"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // FeeReconStore
            .deletingLastPathComponent()  // Sources
            .deletingLastPathComponent()  // repository root
            .appendingPathComponent("Migrations", isDirectory: true)
    }

    /// Reads and validates the directory's migrations, ordered by version.
    public func load() throws(MigrationError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(.unreadableDirectory, file: directory.path)
        }
        var migrations: [Migration] = []
        for fileName in names.sorted() where fileName.hasSuffix(".sql") && !fileName.hasPrefix(".") {
            guard let (version, name) = Self.parse(fileName) else {
                throw MigrationError(.invalidFileName, file: fileName)
            }
            guard let bytes = FileManager.default.contents(atPath: directory.appendingPathComponent(fileName).path),
                let sql = String(bytes: bytes, encoding: .utf8)
            else {
                throw MigrationError(.unreadableDirectory, file: fileName)
            }
            if migrations.last?.version == version {
                throw MigrationError(.duplicateVersion, file: fileName)
            }
            migrations.append(
                Migration(version: version, name: name, fileName: fileName, sql: sql, checksum: SHA256.hexDigest(bytes)))
        }
        return migrations
    }

    /// Applies every pending migration and returns those it applied (none when up to date).
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [Migration] {
        let migrations = try load()
        return try await client.withConnection { connection in
            try await Self.withMigrationLock(connection, logger: logger) {
                try await Self.createHistoryTable(connection)
                let applied = try await Self.appliedMigrations(connection)
                let pending = try Self.pending(migrations, applied: applied)
                for migration in pending {
                    logger.info("applying migration", metadata: ["migration.file": "\(migration.fileName)"])
                    do {
                        try await connection.withTransaction { connection in
                            try await connection.executeScript(PostgresQuery(unsafeSQL: migration.sql))
                            try await connection.execute("""
                                INSERT INTO schema_migrations (version, name, checksum)
                                VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                                """)
                        }
                    } catch let error as PostgresError {
                        throw MigrationError(.failed, file: migration.fileName, underlying: error)
                    }
                }
                if pending.isEmpty { logger.info("migrations up to date") }
                return pending
            }
        }
    }

    /// Every file and every applied version, with its state; changes nothing.
    public func status(client: PostgresClient, logger: Logger) async throws -> [MigrationStatus] {
        let migrations = try load()
        let applied = try await client.withConnection { connection in
            let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].decode(Bool.self)
            return exists ? try await Self.appliedMigrations(connection) : []
        }
        let files = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        var statuses: [MigrationStatus] = []
        for record in applied {
            let state: MigrationStatus.State
            if let file = files[record.version] {
                state = file.checksum == record.checksum && file.name == record.name ? .applied(at: record.appliedAt) : .edited
            } else {
                state = .missing
            }
            statuses.append(MigrationStatus(version: record.version, fileName: record.fileName, state: state))
        }
        let appliedVersions = Set(applied.map(\.version))
        for migration in migrations where !appliedVersions.contains(migration.version) {
            statuses.append(MigrationStatus(version: migration.version, fileName: migration.fileName, state: .pending))
        }
        return statuses.sorted { $0.version < $1.version }
    }

    // MARK: - Internals

    private struct AppliedMigration: Sendable {
        let version: Int
        let name: String
        let checksum: String
        let appliedAt: Date

        var fileName: String { Migrator.fileName(version: version, name: name) }
    }

    static func fileName(version: Int, name: String) -> String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "_" + name + ".sql"
    }

    /// `0001_initial.sql` → (1, "initial"): at least four digits, then lower-case snake case.
    static func parse(_ fileName: String) -> (Int, String)? {
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard digits.count >= 4, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let version = Int(digits),
            let first = name.first, first.isLowercase || first.isNumber,
            name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        else { return nil }
        return (version, String(name))
    }

    private static func withMigrationLock<Result>(
        _ connection: PostgresConnection,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        logger.debug("waiting for the migration lock")
        try await connection.execute("SELECT pg_advisory_lock(\(lockKey))")
        let result: Result
        do {
            result = try await body()
        } catch {
            _ = try? await connection.execute("SELECT pg_advisory_unlock(\(lockKey))")
            throw error
        }
        try await connection.execute("SELECT pg_advisory_unlock(\(lockKey))")
        return result
    }

    private static func createHistoryTable(_ connection: PostgresConnection) async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
    }

    private static func appliedMigrations(_ connection: PostgresConnection) async throws -> [AppliedMigration] {
        try await connection.query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
            .decode((Int, String, String, Date).self)
            .map { AppliedMigration(version: $0.0, name: $0.1, checksum: $0.2, appliedAt: $0.3) }
    }

    /// The files still to apply, after checking that the applied history matches the files.
    private static func pending(_ migrations: [Migration], applied: [AppliedMigration]) throws(MigrationError) -> [Migration] {
        let files = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for record in applied {
            guard let file = files[record.version] else { throw MigrationError(.missing, file: record.fileName) }
            guard file.name == record.name else { throw MigrationError(.renamed, file: file.fileName) }
            guard file.checksum == record.checksum else { throw MigrationError(.edited, file: file.fileName) }
        }
        let newest = applied.last?.version ?? 0
        let appliedVersions = Set(applied.map(\.version))
        let pending = migrations.filter { !appliedVersions.contains($0.version) }
        if let early = pending.first(where: { $0.version < newest }) {
            throw MigrationError(.outOfOrder, file: early.fileName)
        }
        return pending
    }
}
