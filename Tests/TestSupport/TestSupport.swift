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

    /// Creates the database and a client for it. Throws if `FEERECON_TEST_DATABASE_URL` is
    /// missing or the server is unreachable.
    public static func create(
        logger: Logger = .test(),
        maximumConnections: Int = 4,
        configure: @Sendable (inout PostgresConfiguration) -> Void = { _ in }
    ) async throws -> TestDatabase {
        let admin = try PostgresConfiguration(url: TestEnvironment.databaseURL())
        let name = "feerecon_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let connection = try await PostgresConnection.connect(configuration: admin, logger: logger)
        do {
            try await connection.execute("CREATE DATABASE \(identifier: name)")
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()

        var configuration = admin
        configuration.database = name
        configuration.applicationName = "feerecon-tests"
        configuration.pool.maximumConnections = maximumConnections
        configure(&configuration)
        return TestDatabase(
            name: name, configuration: configuration,
            client: PostgresClient(configuration: configuration, logger: logger), admin: admin)
    }

    /// Shuts the client down and drops the database, disconnecting anything still attached.
    public func drop(logger: Logger = .test()) async throws {
        await client.shutdown()
        let connection = try await PostgresConnection.connect(configuration: admin, logger: logger)
        do {
            try await connection.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
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
