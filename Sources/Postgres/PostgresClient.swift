import DequeModule
import Logging
import ServiceLifecycle
import Synchronization

/// A pool of PostgreSQL connections, each driven on its own thread.
///
/// Connections are opened lazily, up to `configuration.pool.maximumConnections`; when all are
/// busy, callers wait in FIFO order (up to `pool.acquireTimeout`). A connection the server closed
/// while idle (a restart, `pg_terminate_backend`) is detected when it is next borrowed and replaced.
/// Call `shutdown()` before dropping the client.
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let logger: Logger
    private let state: Mutex<PoolState>

    public init(configuration: PostgresConfiguration, logger: Logger) {
        precondition(configuration.pool.maximumConnections > 0, "a pool needs at least one connection")
        precondition(configuration.transactionRetry.maximumAttempts > 0, "a transaction needs at least one attempt")
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(PoolState(maximumConnections: configuration.pool.maximumConnections))
    }

    // MARK: - Leasing

    /// Lends a connection to `body` and takes it back afterwards, rolling back any transaction the
    /// body left open. While `body` runs, the task prefers the connection's thread, so its queries
    /// need no extra thread hops. The connection must not escape `body`. If the task is cancelled
    /// while a statement of the lease runs, the server is asked to cancel it (SQLSTATE 57014).
    @discardableResult
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await acquire()
        let result: Result
        do {
            result = try await withTaskExecutorPreference(connection.executors.task, isolation: isolation) {
                try await connection.prepareForUse()
                do {
                    let result = try await withTaskCancellationHandler {
                        try await body(connection)
                    } onCancel: {
                        connection.canceller.cancel()
                    }
                    await connection.cleanUpAfterUse()
                    return result
                } catch {
                    await connection.cleanUpAfterUse()
                    throw error
                }
            }
        } catch {
            await release(connection)
            throw error
        }
        await release(connection)
        return result
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` if it returns, `ROLLBACK` if it throws.
    ///
    /// When the body, or the commit, fails with SQLSTATE 40001 (serialization failure) or 40P01
    /// (deadlock), the whole transaction is rolled back and **the body runs again**, after an
    /// exponential backoff with jitter, up to `configuration.transactionRetry.maximumAttempts`
    /// runs in all. Keep side effects outside the database out of the body, or make them
    /// idempotent. A `BEGIN` that fails because the connection turned out to be dead is also
    /// retried once on a fresh connection (nothing had been committed). `BEGIN` is sent together
    /// with the body's first statement, in one round trip; a body that runs no statement sends
    /// neither `BEGIN` nor `COMMIT`. A connection lost later
    /// (`PostgresError.Code.connectionLost`) is never retried: the commit may have happened.
    @discardableResult
    public func withTransaction<Result>(
        isolation: PostgresIsolationLevel? = nil,
        readOnly: Bool = false,
        logger: Logger? = nil,
        actorIsolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let logger = logger ?? self.logger
        let policy = configuration.transactionRetry
        var attempt = 1
        var reconnects = 0
        while true {
            do {
                return try await withConnection(isolation: actorIsolation) { connection in
                    do {
                        try await connection.begin(isolation: isolation, readOnly: readOnly, logger: logger)
                    } catch let error as PostgresError where error.isConnectionError {
                        throw BeginFailed(error: error)
                    }
                    let result: Result
                    do {
                        result = try await body(connection)
                    } catch {
                        await connection.rollback(logger: logger)
                        throw error
                    }
                    try await connection.commit(logger: logger)
                    return result
                }
            } catch let failure as BeginFailed {
                guard reconnects < 1 else { throw failure.error }
                reconnects += 1
                logger.info("postgres BEGIN found the connection dead; retrying on a new one")
            } catch let error as PostgresError
                where (error.lostBeforeTransaction || error.staleBeforeTransaction) && reconnects < 1
            {
                // BEGIN travels with the first statement: that exchange failing on a dead
                // connection, or on a cached statement the schema changed under (a migration by
                // another instance), ran nothing; the next attempt gets a fresh connection or
                // prepares the statement again.
                reconnects += 1
                logger.info(error.lostBeforeTransaction
                    ? "postgres BEGIN found the connection dead; retrying on a new one"
                    : "postgres cached statement no longer fits the schema; transaction run again")
            } catch let error as PostgresError where error.isTransient && attempt < policy.maximumAttempts {
                let delay = Self.backoff(attempt: attempt, policy: policy)
                logger.debug(
                    "postgres transaction retried",
                    metadata: ["postgres.sqlstate": "\(error.sqlState ?? "")", "postgres.attempt": "\(attempt)"])
                attempt += 1
                try await Task.sleep(for: delay)
            }
        }
    }

    // query and execute borrow a connection for one statement in a single call to its thread:
    // checkout check, statement and clean-up run there together, with no other hops.

    /// Runs one statement on a pooled connection and returns all its rows.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger? = nil) async throws -> PostgresRows {
        let connection = try await acquire()
        do {
            let rows = try await withTaskCancellationHandler {
                try await connection.queryLeased(query, logger: logger)
            } onCancel: {
                connection.canceller.cancel()
            }
            await release(connection)
            return rows
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Runs one statement on a pooled connection and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery, logger: Logger? = nil) async throws -> Int {
        let connection = try await acquire()
        do {
            let rows = try await withTaskCancellationHandler {
                try await connection.queryLeased(query, logger: logger)
            } onCancel: {
                connection.canceller.cancel()
            }
            await release(connection)
            return rows.affectedRows
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Closes every connection and fails waiting and later callers with
    /// `PostgresError.Code.poolShutdown`. Returns once borrowed connections have come back.
    public func shutdown() async {
        let (idle, waiters, mustWait) = state.withLock { state in
            state.beginShutdown()
        }
        for waiter in waiters {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: PostgresError(.poolShutdown))
        }
        for connection in idle { await connection.close() }
        if mustWait {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in state.waitForDrain(continuation) }
                if resumeNow { continuation.resume() }
            }
        }
        logger.debug("postgres pool shut down")
    }

    /// Connections opened or being opened, and callers waiting (for diagnostics and tests).
    public var statistics: (connections: Int, idle: Int, waiting: Int) {
        state.withLock { ($0.total, $0.idle.count, $0.waiters.count) }
    }

    // MARK: - Internals

    private struct BeginFailed: Error {
        let error: PostgresError
    }

    /// The delay before run `attempt + 1`.
    static func backoff(attempt: Int, policy: PostgresConfiguration.TransactionRetry) -> Duration {
        let exponent = min(attempt - 1, 20)
        let ceiling = min(policy.initialDelay * (1 << exponent), policy.maximumDelay)
        // "Equal jitter": half fixed, half random, so retries spread out but never bunch at zero.
        return ceiling / 2 + ceiling / 2 * Double.random(in: 0...1)
    }

    private func acquire() async throws -> PostgresConnection {
        switch state.withLock({ $0.tryAcquire() }) {
        case .use(let connection):
            return connection
        case .create:
            return PostgresConnection(configuration: configuration, logger: logger)
        case .shutDown:
            throw PostgresError(.poolShutdown)
        case .wait:
            break
        }

        let id = state.withLock { $0.makeWaiterID() }
        return try await withTaskCancellationHandler {
            let lease: Lease = try await withCheckedThrowingContinuation { continuation in
                let immediate: Lease.Immediate? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    switch state.tryAcquire() {
                    case .use(let connection): return .connection(connection)
                    case .create: return .create
                    case .shutDown: return .failure(PostgresError(.poolShutdown))
                    case .wait:
                        var waiter = Waiter(id: id, continuation: continuation)
                        if let timeout = configuration.pool.acquireTimeout {
                            waiter.timeout = Task { [weak self] in
                                try? await Task.sleep(for: timeout)
                                guard !Task.isCancelled else { return }
                                self?.failWaiter(id, with: PostgresError(.poolTimeout))
                            }
                        }
                        state.waiters.append(waiter)
                        return nil
                    }
                }
                switch immediate {
                case nil: break
                case .connection(let connection): continuation.resume(returning: .connection(connection))
                case .create: continuation.resume(returning: .create)
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
            switch lease {
            case .connection(let connection): return connection
            case .create: return PostgresConnection(configuration: configuration, logger: logger)
            }
        } onCancel: {
            failWaiter(id, with: CancellationError())
        }
    }

    private func failWaiter(_ id: Int, with error: any Error) {
        let waiter = state.withLock { state in state.removeWaiter(id) }
        guard let waiter else { return }
        waiter.timeout?.cancel()
        if error is PostgresError {
            logger.warning("postgres pool: no connection free within the acquire timeout")
        }
        waiter.continuation.resume(throwing: error)
    }

    private func release(_ connection: PostgresConnection) async {
        switch state.withLock({ $0.release(connection) }) {
        case .none:
            break
        case .handOver(let waiter):
            waiter.timeout?.cancel()
            waiter.continuation.resume(returning: .connection(connection))
        case .close(let drained):
            await connection.close()
            if let drained { drained.resume() }
        }
    }
}

extension PostgresClient: Service {
    /// Runs until graceful shutdown (or cancellation), then shuts the pool down, so the client
    /// can be one of the services of a `ServiceGroup`.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}

/// What a waiter is woken with.
private enum Lease: Sendable {
    case connection(PostgresConnection)
    /// A slot was free after all: the waiter opens a new connection.
    case create

    enum Immediate {
        case connection(PostgresConnection)
        case create
        case failure(any Error)
    }
}

private struct Waiter: Sendable {
    let id: Int
    let continuation: CheckedContinuation<Lease, any Error>
    var timeout: Task<Void, Never>?
}

/// The pool's bookkeeping, only ever touched under the client's mutex.
private struct PoolState: Sendable {
    enum Acquire {
        case use(PostgresConnection)
        /// A slot is free: the caller creates the connection (it counts as leased already).
        case create
        case wait
        case shutDown
    }

    enum Release {
        case none
        case handOver(Waiter)
        case close(drained: CheckedContinuation<Void, Never>?)
    }

    let maximumConnections: Int
    /// Most recently returned last, so the warmest connection is reused first.
    var idle: [PostgresConnection] = []
    var leased = 0
    var waiters: Deque<Waiter> = []
    var nextWaiterID = 0
    var isShutDown = false
    var drained: CheckedContinuation<Void, Never>?

    init(maximumConnections: Int) {
        self.maximumConnections = maximumConnections
    }

    var total: Int { idle.count + leased }

    mutating func makeWaiterID() -> Int {
        nextWaiterID += 1
        return nextWaiterID
    }

    mutating func tryAcquire() -> Acquire {
        if isShutDown { return .shutDown }
        if let connection = idle.popLast() {
            leased += 1
            return .use(connection)
        }
        if total < maximumConnections {
            leased += 1
            return .create
        }
        return .wait
    }

    mutating func release(_ connection: PostgresConnection) -> Release {
        if isShutDown {
            leased -= 1
            if leased == 0, let drained {
                self.drained = nil
                return .close(drained: drained)
            }
            return .close(drained: nil)
        }
        if let waiter = waiters.popFirst() {
            return .handOver(waiter)
        }
        leased -= 1
        idle.append(connection)
        return .none
    }

    mutating func removeWaiter(_ id: Int) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index)
    }

    mutating func beginShutdown() -> (idle: [PostgresConnection], waiters: [Waiter], mustWait: Bool) {
        isShutDown = true
        let idle = self.idle
        self.idle = []
        let waiters = Array(self.waiters)
        self.waiters = []
        return (idle, waiters, leased > 0)
    }

    /// Returns true when nothing is borrowed any more and the caller can stop waiting.
    mutating func waitForDrain(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        if leased == 0 { return true }
        drained = continuation
        return false
    }
}
