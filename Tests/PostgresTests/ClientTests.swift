import Foundation
import Logging
@testable import Postgres
import TestSupport
import Testing

@Suite("Pool, transactions and errors")
struct ClientTests {
    @Test(arguments: [0, 16])
    func concurrentQueriesThroughASmallPoolAllComplete(statementCache: Int) async throws {
        try await withTestDatabase(maximumConnections: 4, configure: { $0.preparedStatementCacheCapacity = statementCache }) { database in
            let client = database.client
            let results = try await withThrowingTaskGroup(of: (Int64, Int64, Int32).self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let row = try await client.query("SELECT \(Int64(i)), \(Int64(i)) * 2, pg_backend_pid()")[0]
                        return try row.decode((Int64, Int64, Int32).self)
                    }
                }
                var results: [(Int64, Int64, Int32)] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.count == 200)
            #expect(Set(results.map(\.0)) == Set(0..<200))
            #expect(results.allSatisfy { $0.1 == $0.0 * 2 })
            #expect(Set(results.map(\.2)).count <= 4)
            #expect(client.statistics.connections <= 4)
        }
    }

    /// A cancelled task's statement is cancelled on the server (not run to completion), in a
    /// single statement and inside a transaction; the connection it ran on is not reused (a late
    /// cancel request could hit its next statement), and the pool goes on working.
    @Test(arguments: [false, true])
    func cancellingATaskCancelsItsStatement(inTransaction: Bool) async throws {
        try await withTestDatabase(maximumConnections: 2) { database in
            let client = database.client
            let marker = inTransaction ? "cancel-me-tx" : "cancel-me"
            let sleeping = PostgresQuery(unsafeSQL: "SELECT pg_sleep(60), '\(marker)'")
            let task = Task {
                if inTransaction {
                    try await client.withTransaction { db in
                        _ = try await db.query("SELECT 1")
                        return try await db.query(sleeping).count
                    }
                } else {
                    try await client.query(sleeping).count
                }
            }
            func running() async throws -> Int64 {
                try await client.query("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND state = 'active' AND query LIKE \("%'\(marker)'%") AND pid <> pg_backend_pid()
                    """)[0].decode(Int64.self)
            }
            let backends = try await client.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")[0]
                .decode(Int64.self)
            #expect(backends >= 1)
            try await poll(until: { try await running() == 1 }, deadline: .seconds(10), "the statement is running")
            task.cancel()
            switch await task.result {
            case .success:
                Issue.record("a cancelled 60 s statement returned")
            case .failure(let error):
                #expect((error as? PostgresError)?.isQueryCanceled == true, "\(error)")
            }
            try await poll(until: { try await running() == 0 }, deadline: .seconds(10), "the server stopped the statement")
            for _ in 0..<4 { #expect(try await client.query("SELECT 1")[0].decode(Int32.self) == 1) }
        }
    }

    @Test func blockingQueriesLeaveTheCooperativePoolFree() async throws {
        try await withTestDatabase(maximumConnections: 6) { database in
            let client = database.client
            // Four queries block in libpq on a lock — more blocked calls than the cooperative pool
            // has threads. Only unrelated async work can release the lock; if the blocked calls
            // held cooperative threads, that work could never run and this test would hang until
            // its deadline. Asserted by liveness, not by elapsed time.
            let (release, releaser) = AsyncStream<Void>.makeStream()
            // pg_locks is cluster-wide and other tests take advisory locks in their own databases
            // (the migrator does): count only this database's lock 42.
            let locks = """
                SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) FROM pg_locks
                WHERE locktype = 'advisory' AND objid = 42 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """
            func lockCounts() async throws -> (granted: Int64, waiting: Int64) {
                try await client.query(PostgresQuery(unsafeSQL: locks))[0].decode((Int64, Int64).self)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await client.withConnection { connection in
                        _ = try await connection.execute("SELECT pg_advisory_lock(42)")
                        for await _ in release { break }
                        _ = try await connection.execute("SELECT pg_advisory_unlock(42)")
                    }
                }
                do {
                    try await poll(until: { try await lockCounts().granted == 1 }, deadline: .seconds(10), "lock held")
                    for _ in 0..<4 { group.addTask { _ = try await client.execute("SELECT pg_advisory_xact_lock_shared(42)") } }
                    try await poll(until: { try await lockCounts().waiting == 4 }, deadline: .seconds(10), "four queries blocked on the lock")
                    for _ in 0..<20 {
                        await withTaskGroup(of: Int.self) { group in
                            for i in 0..<8 { group.addTask { i } }
                            await group.waitForAll()
                        }
                    }
                } catch {
                    // Let go of the lock first, or the blocked queries (and this group) never end.
                    releaser.finish()
                    throw error
                }
                releaser.yield()
                releaser.finish()
                try await group.waitForAll()
            }
        }
    }

    @Test func connectionWorkAndTheBorrowingBodyRunOnTheConnectionsThread() async throws {
        try await withTestDatabase(maximumConnections: 2) { database in
            try await database.client.withConnection { connection in
                #expect(await connection.isOnOwnThread)
                // The body itself prefers the connection's thread, so its calls need no hops.
                #expect(connection.executors.serial.isCurrentThread)
                try await connection.execute("SELECT 1")
                #expect(connection.executors.serial.isCurrentThread)
            }
            let onPool = try await database.client.withConnection { connection in
                await Task.detached { connection.executors.serial.isCurrentThread }.value
            }
            #expect(!onPool, "a detached task runs on the cooperative pool, not the connection thread")
        }
    }

    @Test func failingStatementRollsTheTransactionBack() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE dossiers (code text PRIMARY KEY, amount bigint NOT NULL)")
            try await client.execute("INSERT INTO dossiers VALUES ('HS-1', 100)")
            await #expect(throws: PostgresError.self) {
                try await client.withTransaction { connection in
                    try await connection.execute("INSERT INTO dossiers VALUES ('HS-2', 200)")
                    try await connection.execute("INSERT INTO dossiers VALUES ('HS-1', 300)")
                }
            }
            let codes = try await client.query("SELECT code FROM dossiers ORDER BY code").decode(String.self)
            #expect(codes == ["HS-1"])
        }
    }

    /// BEGIN travels with a transaction's first statement: whatever that statement is (new or
    /// cached prepared statement, unprepared, failing), the transaction is a real one.
    @Test(arguments: [0, 16])
    func beginSentWithTheFirstStatement(statementCache: Int) async throws {
        try await withTestDatabase(maximumConnections: 1, configure: { $0.preparedStatementCacheCapacity = statementCache }) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int PRIMARY KEY)")
            for round in 0..<2 {  // the second round finds its statements prepared
                let inside = try await client.withTransaction { connection in
                    let first = try await connection.query("SELECT txid_current()")
                    try await connection.execute("INSERT INTO t VALUES (\(Int32(round * 10 + 1)))")
                    let second = try await connection.query("SELECT txid_current(), current_setting('transaction_isolation')")
                    return try (first[0].decode(Int64.self), second[0].decode((Int64, String).self))
                }
                // One transaction from the first statement on.
                #expect(inside.0 == inside.1.0)
                #expect(inside.1.1 == "read committed")
                // The first statement failing: reported, and nothing of the transaction stays.
                let error = await #expect(throws: PostgresError.self) {
                    try await client.withTransaction(isolation: .serializable) { connection in
                        try await connection.execute("INSERT INTO t VALUES (\(Int32(round * 10 + 1)))")
                    }
                }
                #expect(error?.sqlState == "23505")
                // Isolation travels with the deferred BEGIN.
                let isolation = try await client.withTransaction(isolation: .repeatableRead) { connection in
                    try await connection.query("SELECT current_setting('transaction_isolation')")[0].decode(String.self)
                }
                #expect(isolation == "repeatable read")
                // A body that runs nothing commits nothing and leaves the connection usable.
                let nothing = try await client.withTransaction { _ in 42 }
                #expect(nothing == 42)
            }
            #expect(try await client.query("SELECT v FROM t ORDER BY v").decode(Int32.self) == [1, 11])
            // A statement the server refuses to prepare, first in its transaction.
            let refused = await #expect(throws: PostgresError.self) {
                try await client.withTransaction { connection in try await connection.execute("SELEC 1") }
            }
            #expect(refused?.sqlState == "42601")
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 2)
        }
    }

    @Test func thrownSwiftErrorRollsBackAndIsRethrown() async throws {
        struct Abort: Error {}
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int)")
            await #expect(throws: Abort.self) {
                try await client.withTransaction { connection in
                    try await connection.execute("INSERT INTO t VALUES (1)")
                    throw Abort()
                }
            }
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 0)
            let committed = try await client.withTransaction(isolation: .repeatableRead) { connection in
                try await connection.execute("INSERT INTO t VALUES (2), (3)")
            }
            #expect(committed == 2)
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 2)
        }
    }

    @Test func swallowedErrorMakesCommitFail() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int PRIMARY KEY)")
            let error = await #expect(throws: PostgresError.self) {
                try await client.withTransaction { connection in
                    try await connection.execute("INSERT INTO t VALUES (1)")
                    _ = try? await connection.execute("INSERT INTO t VALUES (1)")
                }
            }
            #expect(error?.code == .unexpectedResult)
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 0)
        }
    }

    @Test func serializationFailureIsRetriedAndTheBodyRunsAgain() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int)")
            let attempts = Locked(0)
            try await client.withTransaction(isolation: .serializable) { connection in
                let attempt = attempts.withLock { $0 += 1; return $0 }
                try await connection.execute("INSERT INTO t VALUES (\(attempt))")
                if attempt == 1 {
                    try await connection.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'forced conflict' USING ERRCODE = '40001'; END $$")
                }
            }
            #expect(attempts.withLock { $0 } == 2)
            #expect(try await client.query("SELECT v FROM t").decode(Int32.self) == [2])
        }
    }

    @Test func realSerializableConflictIsRetried() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE duty (officer text, on_call boolean)")
            try await client.execute("INSERT INTO duty VALUES ('an', true), ('binh', true)")
            let attempts = Locked(0)
            let readers = Locked(0)
            // Classic write skew: each takes one officer off call if the other is still on.
            // Both read before either writes, so SERIALIZABLE must abort one (40001).
            func goOffCall(_ officer: String) async throws {
                try await client.withTransaction(isolation: .serializable) { connection in
                    let attempt = attempts.withLock { $0 += 1; return $0 }
                    let onCall = try await connection.query("SELECT count(*) FROM duty WHERE on_call")[0].decode(Int64.self)
                    if attempt <= 2 {
                        readers.withLock { $0 += 1 }
                        try await poll(until: { readers.withLock { $0 } >= 2 }, deadline: .seconds(10), "both readers")
                    }
                    if onCall >= 2 {
                        try await connection.execute("UPDATE duty SET on_call = false WHERE officer = \(officer)")
                    }
                }
            }
            async let first: Void = goOffCall("an")
            async let second: Void = goOffCall("binh")
            _ = try await (first, second)
            #expect(attempts.withLock { $0 } >= 3, "at least one of the two ran again")
            #expect(try await client.query("SELECT count(*) FROM duty WHERE on_call")[0].decode(Int64.self) == 1)
        }
    }

    @Test func retriesStopAfterTheConfiguredAttempts() async throws {
        try await withTestDatabase(configure: {
            $0.transactionRetry = .init(maximumAttempts: 3, initialDelay: .milliseconds(1), maximumDelay: .milliseconds(2))
        }) { database in
            let attempts = Locked(0)
            let error = await #expect(throws: PostgresError.self) {
                try await database.client.withTransaction { connection in
                    attempts.withLock { $0 += 1 }
                    try await connection.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$")
                }
            }
            #expect(error?.isDeadlock == true)
            #expect(attempts.withLock { $0 } == 3)
        }
    }

    @Test func otherServerErrorsAreNotRetried() async throws {
        try await withTestDatabase { database in
            let attempts = Locked(0)
            await #expect(throws: PostgresError.self) {
                try await database.client.withTransaction { connection in
                    attempts.withLock { $0 += 1 }
                    try await connection.execute("SELECT 1/0")
                }
            }
            #expect(attempts.withLock { $0 } == 1)
        }
    }

    @Test func errorDescriptionLeaksNoBoundValue() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE citizens (national_id text CONSTRAINT citizens_national_id_key UNIQUE)")
            let secret = "079201001234"
            try await client.execute("INSERT INTO citizens VALUES (\(secret))")
            let error = try await #require(throws: PostgresError.self) {
                try await client.execute("INSERT INTO citizens VALUES (\(secret))")
            }
            #expect(error.isUniqueViolation)
            #expect(error.sqlState == "23505")
            #expect(error.constraintName == "citizens_national_id_key")
            #expect(error.tableName == "citizens")
            #expect(error.detail?.contains(secret) == true, "the detail property keeps the server's text")
            #expect(error.description == "PostgresError(server, sqlState: 23505, constraint: citizens_national_id_key, schema: public, table: citizens)")
            #expect(!String(reflecting: error).contains(secret))

            let typed = try await #require(throws: PostgresError.self) {
                try await client.query("SELECT \("abc-secret")::int8")
            }
            #expect(typed.sqlState == "22P02")
            #expect(typed.message?.contains("abc-secret") == true)
            #expect(!typed.description.contains("abc-secret"))
        }
    }

    @Test func connectionLeftInATransactionIsRolledBackOnReturn() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int)")
            try await client.withConnection { connection in
                try await connection.execute("BEGIN")
                try await connection.execute("INSERT INTO t VALUES (1)")
            }
            try await client.withConnection { connection in
                let count = try await connection.query("SELECT count(*) FROM t")[0].decode(Int64.self)
                #expect(count == 0)
                let first = try await connection.query("SELECT txid_current()")[0].decode(Int64.self)
                let second = try await connection.query("SELECT txid_current()")[0].decode(Int64.self)
                #expect(first != second, "each statement runs in its own transaction again")
            }
        }
    }

    @Test func waitersTimeOut() async throws {
        try await withTestDatabase(maximumConnections: 1, configure: { $0.pool.acquireTimeout = .milliseconds(200) }) { database in
            let client = database.client
            let holding = Locked(false)
            let release = Locked(false)
            async let holder: Void = client.withConnection { connection in
                try await connection.execute("SELECT 1")
                holding.withLock { $0 = true }
                try await poll(until: { release.withLock { $0 } }, deadline: .seconds(10), "release")
            }
            try await poll(until: { holding.withLock { $0 } }, "holder")
            let error = await #expect(throws: PostgresError.self) { try await client.execute("SELECT 1") }
            #expect(error?.code == .poolTimeout)
            release.withLock { $0 = true }
            try await holder
            #expect(try await client.execute("SELECT 1") == 1)
        }
    }

    @Test func waitersAreServedInOrder() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            let order = Locked<[Int]>([])
            let release = Locked(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await client.withConnection { _ in
                        try await poll(until: { release.withLock { $0 } }, "release")
                    }
                }
                try await poll(until: { client.statistics.connections == 1 && client.statistics.idle == 0 }, "holder")
                for i in 0..<5 {
                    group.addTask {
                        try await client.withConnection { _ in order.withLock { $0.append(i) } }
                    }
                    try await poll(until: { client.statistics.waiting == i + 1 }, "waiter \(i)")
                }
                release.withLock { $0 = true }
                try await group.waitForAll()
            }
            #expect(order.withLock { $0 } == [0, 1, 2, 3, 4])
        }
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        try await withTestDatabase(maximumConnections: 1, configure: { $0.pool.acquireTimeout = nil }) { database in
            let client = database.client
            let release = Locked(false)
            async let holder: Void = client.withConnection { _ in
                try await poll(until: { release.withLock { $0 } }, "release")
            }
            try await poll(until: { client.statistics.idle == 0 && client.statistics.connections == 1 }, "holder")
            let waiter = Task { try await client.execute("SELECT 1") }
            try await poll(until: { client.statistics.waiting == 1 }, "waiter queued")
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
            #expect(client.statistics.waiting == 0)
            release.withLock { $0 = true }
            try await holder
        }
    }

    @Test func shutdownFailsLaterCallers() async throws {
        let database = try await TestDatabase.create()
        let client = database.client
        #expect(try await client.execute("SELECT 1") == 1)
        try await database.drop()
        let error = await #expect(throws: PostgresError.self) { try await client.execute("SELECT 1") }
        #expect(error?.code == .poolShutdown)
    }

    @Test func standaloneConnection() async throws {
        let configuration = try PostgresConfiguration(url: TestEnvironment.databaseURL())
        let connection = try await PostgresConnection.connect(configuration: configuration, logger: .test())
        #expect(try await connection.query("SELECT 'xin chào'::text")[0].decode(String.self) == "xin chào")
        #expect(await connection.backendProcessID != nil)
        let inserted = try await connection.withTransaction { connection in
            try await connection.query("SELECT txid_current() > 0")[0].decode(Bool.self)
        }
        #expect(inserted)
        await connection.close()
        let error = await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1") }
        #expect(error?.code == .connectionClosed)
    }

    @Test func unreachableServerIsAConnectionError() async throws {
        let port = try freeLoopbackPort()
        var configuration = PostgresConfiguration(port: port, username: "postgres", password: "hunter2", database: "x")
        configuration.connectTimeout = .seconds(2)
        let client = PostgresClient(configuration: configuration, logger: .test())
        let error = await #expect(throws: PostgresError.self) { try await client.execute("SELECT 1") }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("hunter2") == false)
        #expect(error?.message?.contains("hunter2") == false)
        await client.shutdown()
    }

    @Test func scriptsRunSeveralStatements() async throws {
        try await withTestDatabase { database in
            try await database.client.withConnection { connection in
                try await connection.executeScript(PostgresQuery(unsafeSQL: """
                    CREATE TABLE a (v int);
                    INSERT INTO a VALUES (1), (2);
                    CREATE TABLE b AS SELECT v * 10 AS w FROM a;
                    """))
                #expect(try await connection.query("SELECT sum(w)::int8 FROM b")[0].decode(Int64.self) == 30)
            }
        }
    }

    @Test func preparedStatementsSurviveSchemaChanges() async throws {
        try await withTestDatabase(maximumConnections: 1, configure: { $0.preparedStatementCacheCapacity = 2 }) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (a int)")
            try await client.execute("INSERT INTO t VALUES (1)")
            #expect(try await client.query("SELECT * FROM t").columns.count == 1)
            try await client.execute("ALTER TABLE t ADD COLUMN b int")
            #expect(try await client.query("SELECT * FROM t").columns.count == 2)
            for i in 0..<10 {
                #expect(try await client.query("SELECT \(i)::int8 + \(Int64(i))")[0].decode(Int64.self) == Int64(2 * i))
                #expect(try await client.query("SELECT \(i)::int8 * 1")[0].decode(Int64.self) == Int64(i))
                #expect(try await client.query("SELECT \(i)::int8 - 1")[0].decode(Int64.self) == Int64(i - 1))
            }
            let prepared = try await client.query("SELECT count(*) FROM pg_prepared_statements")[0].decode(Int64.self)
            #expect(prepared <= 3)
        }
    }

    /// A cached statement that no longer fits the schema, run first in a transaction (sent with
    /// its BEGIN): the transaction is run again with the statement prepared afresh, as another
    /// instance's migration must not fail a request here.
    @Test func aTransactionWhoseCachedFirstStatementWentStaleRunsAgain() async throws {
        try await withTestDatabase(maximumConnections: 1, configure: { $0.preparedStatementCacheCapacity = 16 }) { database in
            let client = database.client
            try await client.execute("CREATE TABLE s (a int4)")
            try await client.execute("INSERT INTO s VALUES (1)")
            let select: PostgresQuery = "SELECT a FROM s WHERE a = \(Int32(1))"
            func read() async throws -> Int {
                try await client.withTransaction { db in try await db.query(select).count }
            }
            #expect(try await read() == 1)
            try await client.execute("ALTER TABLE s ALTER COLUMN a TYPE int8")
            var runs = 0
            let count = try await client.withTransaction { db in
                runs += 1
                return try await db.query(select).count
            }
            #expect(count == 1 && runs == 2)
            #expect(try await read() == 1)
        }
    }
}
