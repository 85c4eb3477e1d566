import ArgumentParser
import FeeReconStore
import Foundation
import Logging
import Postgres

/// `feerecon migrate`: applies pending migrations, or lists them with `--status`.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending database migrations (safe to run from several processes at once).")

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Directory of NNNN_name.sql files (default: $FEERECON_MIGRATIONS, else the repository's Migrations/).")
    var migrations: String?

    @Flag(help: "List every migration and whether it is applied; change nothing.")
    var status = false

    func run() async throws {
        let logger = Logger(label: "feerecon.migrate")
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["FEERECON_DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("no database: pass --database-url or set FEERECON_DATABASE_URL")
        }
        var configuration = try PostgresConfiguration(url: url)
        configuration.pool.maximumConnections = 1
        configuration.pool.acquireTimeout = nil
        if configuration.applicationName == nil { configuration.applicationName = "feerecon-migrate" }
        let migrator = Migrator(directory: migrations.map { URL(fileURLWithPath: $0, isDirectory: true) })
        let client = PostgresClient(configuration: configuration, logger: logger)
        do {
            if status {
                for entry in try await migrator.status(client: client, logger: logger) {
                    print(Self.describe(entry))
                }
            } else {
                let applied = try await migrator.migrate(client: client, logger: logger)
                print(applied.isEmpty ? "up to date" : applied.map { "applied \($0.fileName)" }.joined(separator: "\n"))
            }
        } catch let error as PostgresError where error.code == .connectionFailed {
            await client.shutdown()
            // libpq's reason (refused, timed out, authentication) names host and user, never the password.
            throw ValidationError("cannot connect to \(configuration): \(error.message ?? "\(error)")")
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    private static func describe(_ entry: MigrationStatus) -> String {
        switch entry.state {
        case .applied(let date): "applied  \(entry.fileName)  \(date.formatted(.iso8601))"
        case .pending: "pending  \(entry.fileName)"
        case .edited: "EDITED   \(entry.fileName)  (file changed after it was applied)"
        case .missing: "MISSING  \(entry.fileName)  (applied, file gone)"
        }
    }
}
