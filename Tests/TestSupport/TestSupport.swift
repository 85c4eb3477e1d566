import Cryptography
import FeeReconStore
import Foundation
import Logging
import Postgres
import Synchronization

/// Why test setup could not proceed. Tests that need the database fail with it; they never skip.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// The environment `scripts/test` provides.
public enum TestEnvironment {
    /// `FEERECON_TEST_DATABASE_URL`: a superuser URL of the throwaway cluster.
    public static func databaseURL() throws -> String {
        try variable("FEERECON_TEST_DATABASE_URL")
    }

    /// `FEERECON_TEST_PG_BIN`: the directory holding initdb, pg_ctl, postgres.
    public static func postgresBinaries() throws -> String {
        try variable("FEERECON_TEST_PG_BIN")
    }

    static func variable(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw TestSupportError("\(name) is not set: run the tests through scripts/test, which starts PostgreSQL")
        }
        return value
    }
}

extension Logger {
    /// A logger for tests: warnings and worse, or `FEERECON_TEST_LOG_LEVEL`.
    public static func test(_ label: String = "test") -> Logger {
        var logger = Logger(label: label)
        let level = ProcessInfo.processInfo.environment["FEERECON_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
        logger.logLevel = level ?? .warning
        return logger
    }
}

/// A freshly created, uniquely named database on the test cluster, with a pool connected to it.
public struct TestDatabase: Sendable {
    public let name: String
    public let configuration: PostgresConfiguration
    public let client: PostgresClient
    private let admin: PostgresConfiguration

    /// The URL of this database (for child processes such as `feerecon migrate`).
    public var url: String {
        var components = URLComponents()
        components.scheme = "postgresql"
        components.user = configuration.username
        components.password = configuration.password
        components.host = configuration.host
        components.port = configuration.port
        components.path = "/" + name
        return components.string!
    }

    /// Creates an empty database and a client for it. Throws if `FEERECON_TEST_DATABASE_URL` is
    /// missing or the server is unreachable.
    public static func create(
        logger: Logger = .test(),
        maximumConnections: Int = 4,
        configure: @Sendable (inout PostgresConfiguration) -> Void = { _ in }
    ) async throws -> TestDatabase {
        let admin = try PostgresConfiguration(url: TestEnvironment.databaseURL())
        let name = uniqueName("feerecon_test_")
        try await withAdminConnection(admin, logger: logger) { connection in
            try await connection.execute("CREATE DATABASE \(identifier: name)")
        }
        return make(name: name, admin: admin, logger: logger, maximumConnections: maximumConnections, configure: configure)
    }

    /// Creates a database with `migrations` (default: the repository's `Migrations/`) applied.
    /// The migrated schema is built once per set of files, as a template database, and cloned.
    public static func createMigrated(
        migrations: URL? = nil,
        logger: Logger = .test(),
        maximumConnections: Int = 4,
        configure: @Sendable (inout PostgresConfiguration) -> Void = { _ in }
    ) async throws -> TestDatabase {
        let admin = try PostgresConfiguration(url: TestEnvironment.databaseURL())
        let migrator = Migrator(directory: migrations)
        let template = try await templates.template(for: migrator, admin: admin, logger: logger)
        let name = uniqueName("feerecon_test_")
        try await withAdminConnection(admin, logger: logger) { connection in
            // The template's last sessions may still be exiting; cloning waits for them.
            try await poll(until: {
                do {
                    try await connection.execute("CREATE DATABASE \(identifier: name) TEMPLATE \(identifier: template)")
                    return true
                } catch let error as PostgresError where error.sqlState == "55006" {
                    return false
                }
            }, deadline: .seconds(30), "cloning \(template)")
        }
        return make(name: name, admin: admin, logger: logger, maximumConnections: maximumConnections, configure: configure)
    }

    private static func make(
        name: String, admin: PostgresConfiguration, logger: Logger, maximumConnections: Int,
        configure: (inout PostgresConfiguration) -> Void
    ) -> TestDatabase {
        var configuration = admin
        configuration.database = name
        configuration.applicationName = "feerecon-tests"
        configuration.pool.maximumConnections = maximumConnections
        configure(&configuration)
        return TestDatabase(
            name: name, configuration: configuration,
            client: PostgresClient(configuration: configuration, logger: logger), admin: admin)
    }

    static func uniqueName(_ prefix: String) -> String {
        prefix + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    }

    /// Shuts the client down and drops the database, disconnecting anything still attached.
    public func drop(logger: Logger = .test()) async throws {
        await client.shutdown()
        try await withAdminConnection(admin, logger: logger) { connection in
            try await connection.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        }
    }
}

/// A standalone connection to the cluster's maintenance database, closed afterwards.
@discardableResult
func withAdminConnection<Result: Sendable>(
    _ admin: PostgresConfiguration,
    logger: Logger,
    _ body: @Sendable (PostgresConnection) async throws -> Result
) async throws -> Result {
    let connection = try await PostgresConnection.connect(configuration: admin, logger: logger)
    do {
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}

private let templates = MigratedTemplates()

/// Migrated template databases, one per distinct set of migration files, built once per process.
private actor MigratedTemplates {
    private var building: [String: Task<String, any Error>] = [:]

    func template(for migrator: Migrator, admin: PostgresConfiguration, logger: Logger) async throws -> String {
        let migrations = try migrator.load()
        let key = SHA256.hexDigest(migrations.map { "\($0.fileName):\($0.checksum)\n" }.joined().utf8)
        if let task = building[key] { return try await task.value }
        let task = Task { () throws -> String in
            let name = "feerecon_template_" + key.prefix(16)
            let exists = try await withAdminConnection(admin, logger: logger) { connection in
                let found = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(name)")
                if found.isEmpty { try await connection.execute("CREATE DATABASE \(identifier: name)") }
                return !found.isEmpty
            }
            if !exists {
                var configuration = admin
                configuration.database = name
                configuration.pool.maximumConnections = 1
                let client = PostgresClient(configuration: configuration, logger: logger)
                do {
                    try await migrator.migrate(client: client, logger: logger)
                } catch {
                    await client.shutdown()
                    _ = try? await withAdminConnection(admin, logger: logger) { connection in
                        try await connection.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
                    }
                    throw error
                }
                await client.shutdown()
            }
            return name
        }
        building[key] = task
        return try await task.value
    }
}

/// Runs `body` with a fresh database and drops it afterwards, whether `body` throws or not.
public func withTestDatabase<Result>(
    logger: Logger = .test(),
    maximumConnections: Int = 4,
    configure: @Sendable (inout PostgresConfiguration) -> Void = { _ in },
    isolation: isolated (any Actor)? = #isolation,
    _ body: (TestDatabase) async throws -> Result
) async throws -> Result {
    let database = try await TestDatabase.create(
        logger: logger, maximumConnections: maximumConnections, configure: configure)
    let result: Result
    do {
        result = try await body(database)
    } catch {
        try? await database.drop(logger: logger)
        throw error
    }
    try await database.drop(logger: logger)
    return result
}

/// Runs `body` with a fresh database migrated with `migrations` (default: the repository's
/// `Migrations/`) and drops it afterwards.
public func withMigratedTestDatabase<Result>(
    migrations: URL? = nil,
    logger: Logger = .test(),
    maximumConnections: Int = 4,
    configure: @Sendable (inout PostgresConfiguration) -> Void = { _ in },
    isolation: isolated (any Actor)? = #isolation,
    _ body: (TestDatabase) async throws -> Result
) async throws -> Result {
    let database = try await TestDatabase.createMigrated(
        migrations: migrations, logger: logger, maximumConnections: maximumConnections, configure: configure)
    let result: Result
    do {
        result = try await body(database)
    } catch {
        try? await database.drop(logger: logger)
        throw error
    }
    try await database.drop(logger: logger)
    return result
}

/// Checks `condition` until it holds, or throws once `deadline` has passed. For waiting on
/// something another task or process does, instead of sleeping a fixed time.
public func poll(
    until condition: () async throws -> Bool,
    deadline: Duration = .seconds(10),
    interval: Duration = .milliseconds(10),
    _ what: @autoclosure () -> String = "condition",
    isolation: isolated (any Actor)? = #isolation
) async throws {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while true {
        if try await condition() { return }
        guard clock.now < end else {
            throw TestSupportError("\(what()) did not hold within \(deadline)")
        }
        try await Task.sleep(for: interval)
    }
}

/// A value shared between concurrent test tasks.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) {
        mutex = Mutex(value)
    }

    public func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        mutex.withLock { body(&$0) }
    }

    public var value: Value { mutex.withLock { $0 } }
}
