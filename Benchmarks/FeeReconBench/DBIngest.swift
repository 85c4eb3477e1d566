import ArgumentParser
import Foundation
import Logging
import Postgres

/// `feerecon-bench db-ingest`: one-row `INSERT … ON CONFLICT DO NOTHING` statements (each its own
/// transaction) from N concurrent callers through a pool of N connections, for a fixed time.
/// Prints one `RESULT` line for Benchmarks/db-ingest to parse.
struct DBIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db-ingest",
        abstract: "Measure single-row insert transactions through the Postgres pool.")

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        /// Unnamed statements (PQexecParams), like `pgbench -M extended`.
        case extended
        /// Statements prepared once per connection (PQprepare/PQexecPrepared), like `pgbench -M prepared`.
        case prepared
    }

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Concurrent callers; the pool gets as many connections.")
    var callers = 16

    @Option(help: "Measured seconds (after every connection is open).")
    var duration = 10.0

    @Option(help: "Protocol mode: \(Mode.allCases.map(\.rawValue).joined(separator: ", ")).")
    var mode = Mode.extended

    @Option(help: "Table to insert into: (key bigint primary key, amount bigint, note text).")
    var table = "ingest"

    func validate() throws {
        guard callers > 0, callers <= 1000 else { throw ValidationError("--callers must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
    }

    func run() async throws {
        var logger = Logger(label: "feerecon.bench")
        logger.logLevel = .warning
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["FEERECON_DATABASE_URL"] else {
            throw ValidationError("no database: pass --database-url or set FEERECON_DATABASE_URL")
        }
        var configuration = try PostgresConfiguration(url: url)
        configuration.applicationName = "feerecon-bench"
        configuration.pool.maximumConnections = callers
        configuration.preparedStatementCacheCapacity = mode == .prepared ? 16 : 0
        let client = PostgresClient(configuration: configuration, logger: logger)

        let insert: @Sendable (Int64) -> PostgresQuery = { [table] key in
            let amount: Int64 = 150_000
            return "INSERT INTO \(identifier: table) (key, amount, note) VALUES (\(key), \(amount), 'bench') ON CONFLICT DO NOTHING"
        }

        // Open every connection before the clock starts, as pgbench does.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    _ = try await client.execute("SELECT pg_sleep(0.05)")
                }
            }
            try await group.waitForAll()
        }

        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(Int(duration * 1000))
        let perCaller = try await withThrowingTaskGroup(of: (latencies: [Int64], errors: Int).self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var latencies: [Int64] = []
                    latencies.reserveCapacity(Int(duration) * 20_000 / callers + 1024)
                    var errors = 0
                    // Bounded by the deadline and by a generous statement count.
                    for _ in 0..<50_000_000 {
                        let began = clock.now
                        guard began < end else { break }
                        do {
                            try await client.execute(insert(Int64.random(in: 1...1_000_000_000, using: &generator)))
                        } catch {
                            errors += 1
                            if errors > 100 { throw error }
                        }
                        let (seconds, attoseconds) = (clock.now - began).components
                        latencies.append(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
                    }
                    return (latencies, errors)
                }
            }
            return try await group.reduce(into: [(latencies: [Int64], errors: Int)]()) { $0.append($1) }
        }
        let elapsed = clock.now - start
        await client.shutdown()

        let latencies = perCaller.flatMap(\.latencies).sorted()
        let errors = perCaller.reduce(0) { $0 + $1.errors }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            let index = min(latencies.count - 1, Int((p * Double(latencies.count)).rounded(.up)) - 1)
            return Double(latencies[max(0, index)]) / 1000
        }
        let completed = latencies.count - errors
        print(String(
            format: "RESULT mode=%@ callers=%d transactions=%d errors=%d seconds=%.3f tps=%.1f p50_ms=%.3f p99_ms=%.3f",
            mode.rawValue, callers, completed, errors, seconds, Double(completed) / seconds, percentile(0.50),
            percentile(0.99)))
    }
}
