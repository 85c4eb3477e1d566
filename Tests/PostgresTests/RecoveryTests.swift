import Foundation
import Postgres
import TestSupport
import Testing

/// These tests stop and restart PostgreSQL, so they use a private cluster (`TestCluster`) rather
/// than the shared one of `scripts/test`: other tests keep running against that one in parallel.
@Suite("Recovery after the server restarts")
struct RecoveryTests {
    @Test func poolRecoversAfterRestart() async throws {
        let cluster = try await TestCluster.start()
        do {
            var configuration = try PostgresConfiguration(url: cluster.url)
            configuration.pool.maximumConnections = 4
            let client = PostgresClient(configuration: configuration, logger: .test())

            // Open all four connections and leave them idle.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { try await client.execute("SELECT pg_sleep(0.05)") } }
                try await group.waitForAll()
            }
            #expect(client.statistics.connections == 4)
            let before = Set(try await client.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'")
                .decode(Int32.self))

            try await cluster.restart()

            for i in 0..<20 {
                #expect(try await client.query("SELECT \(Int64(i))")[0].decode(Int64.self) == Int64(i))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let affected = try await client.execute("SELECT 1")
                        #expect(affected == 1)
                    }
                }
                try await group.waitForAll()
            }
            let after = Set(try await client.query("SELECT pg_backend_pid()").decode(Int32.self))
            #expect(after.isDisjoint(with: before))
            try await client.withTransaction { connection in
                try await connection.execute("CREATE TABLE IF NOT EXISTS survived (v int)")
            }
            await client.shutdown()
        } catch {
            try? await cluster.destroy()
            throw error
        }
        try await cluster.destroy()
    }

    @Test func queriesInFlightDuringRestartFailAsConnectionErrorsThenRecover() async throws {
        let cluster = try await TestCluster.start()
        do {
            var configuration = try PostgresConfiguration(url: cluster.url)
            configuration.pool.maximumConnections = 3
            let client = PostgresClient(configuration: configuration, logger: .test())
            try await client.execute("CREATE TABLE hits (v int)")

            let stop = Locked(false)
            let failures = Locked<[PostgresError]>([])
            let successes = Locked(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        // Bounded: at most 50,000 statements per worker, until told to stop.
                        for _ in 0..<50_000 where !stop.withLock({ $0 }) {
                            do {
                                try await client.execute("INSERT INTO hits SELECT 1 FROM pg_sleep(0.01)")
                                successes.withLock { $0 += 1 }
                            } catch let error as PostgresError {
                                failures.withLock { $0.append(error) }
                            }
                        }
                    }
                }
                try await poll(until: { successes.withLock { $0 } >= 10 }, "load running")
                try await cluster.restart()
                let afterRestart = successes.withLock { $0 }
                try await poll(until: { successes.withLock { $0 } >= afterRestart + 10 }, "load after restart")
                stop.withLock { $0 = true }
                try await group.waitForAll()
            }
            // Failures happen only around the restart, and each says the connection is the problem.
            for error in failures.withLock({ $0 }) {
                #expect(error.isConnectionError || error.sqlState?.hasPrefix("57") == true, "\(error)")
            }
            #expect(try await client.execute("SELECT 1") == 1)
            await client.shutdown()
        } catch {
            try? await cluster.destroy()
            throw error
        }
        try await cluster.destroy()
    }

    @Test func terminatedBackendIsReplacedTransparently() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            let pid = try await client.query("SELECT pg_backend_pid()")[0].decode(Int32.self)
            let admin = try await PostgresConnection.connect(
                configuration: PostgresConfiguration(url: TestEnvironment.databaseURL()), logger: .test())
            #expect(try await admin.query("SELECT pg_terminate_backend(\(pid))")[0].decode(Bool.self))
            try await poll(until: {
                try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)")[0].decode(Int64.self) == 0
            }, "backend gone")
            await admin.close()
            let newPID = try await client.query("SELECT pg_backend_pid()")[0].decode(Int32.self)
            #expect(newPID != pid)
        }
    }

    @Test func transactionWhoseConnectionDiedWhileIdleRunsOnANewOne() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int)")
            let pid = try await client.query("SELECT pg_backend_pid()")[0].decode(Int32.self)
            let admin = try await PostgresConnection.connect(
                configuration: PostgresConfiguration(url: TestEnvironment.databaseURL()), logger: .test())
            _ = try await admin.query("SELECT pg_terminate_backend(\(pid))")
            await admin.close()
            let attempts = Locked(0)
            try await client.withTransaction { connection in
                attempts.withLock { $0 += 1 }
                try await connection.execute("INSERT INTO t VALUES (1)")
            }
            #expect(attempts.withLock { $0 } == 1)
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 1)
        }
    }
}
