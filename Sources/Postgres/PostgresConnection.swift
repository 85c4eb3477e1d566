import CLibPQ
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Transaction isolation levels for `BEGIN ISOLATION LEVEL …`.
public enum PostgresIsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// One libpq connection. Every libpq call it makes runs on the connection's own OS thread (the
/// actor's executor), never on the Swift cooperative pool.
///
/// Most code borrows connections from a `PostgresClient`; `connect(configuration:logger:)` opens a
/// standalone one (closed with `close()`).
public actor PostgresConnection {
    /// A process-unique number, used in log metadata (`postgres.connection.id`).
    public nonisolated let id: Int
    nonisolated let executors: ConnectionExecutors
    nonisolated let configuration: PostgresConfiguration

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executors.serial.asUnownedSerialExecutor()
    }

    private enum State {
        /// Never opened, or the last attempt to open failed.
        case disconnected
        case connected(OpaquePointer)
        /// The connection broke; libpq's handle is already freed.
        case broken
        /// `close()` was called; nothing more will run.
        case closed
    }

    private var state: State = .disconnected
    /// Between a `COPY … FROM STDIN` being accepted and its end being sent.
    private var copyInProgress = false
    /// The `BEGIN` of the transaction `begin` opened, not sent yet: it travels with the
    /// transaction's first statement, in one round trip (libpq pipeline mode). A transaction that
    /// runs no statement sends neither `BEGIN` nor `COMMIT`.
    private var deferredBegin: String?
    private var logger: Logger
    private let notices: NoticeSink
    private var statements: StatementCache
    /// Cancels the running statement from outside the connection's thread.
    nonisolated let canceller: StatementCanceller

    private static let nextID = Atomic<Int>(1)

    init(configuration: PostgresConfiguration, logger: Logger) {
        let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.id = id
        self.configuration = configuration
        self.executors = ConnectionExecutors(name: "postgres-\(id)")
        var logger = logger
        logger[metadataKey: "postgres.connection.id"] = "\(id)"
        self.logger = logger
        self.notices = NoticeSink(logger: logger)
        self.canceller = StatementCanceller(logger: logger)
        self.statements = StatementCache(capacity: configuration.preparedStatementCacheCapacity)
    }

    /// Runs on the connection's thread, like every other libpq call.
    isolated deinit {
        if case .connected(let handle) = state { PQfinish(handle) }
    }

    /// Opens a standalone connection (not pooled).
    public static func connect(configuration: PostgresConfiguration, logger: Logger) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration, logger: logger)
        try await connection.open()
        return connection
    }

    /// Closes the connection; later calls throw `PostgresError.Code.connectionClosed`.
    public func close() {
        if case .connected(let handle) = state {
            PQfinish(handle)
            logger.debug("postgres connection closed")
        }
        canceller.install(from: nil)
        state = .closed
    }

    /// Whether the connection is open and believed healthy.
    public var isConnected: Bool {
        guard case .connected(let handle) = state else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The server process serving this connection (`pg_backend_pid()`), if connected.
    public var backendProcessID: Int32? {
        guard case .connected(let handle) = state else { return nil }
        return PQbackendPID(handle)
    }

    // MARK: - Statements

    /// Runs one statement and returns all of its rows.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger? = nil) throws(PostgresError) -> PostgresRows {
        let result = try run(query, logger: logger ?? self.logger)
        return PostgresRows(result: result, affectedRows: Self.affectedRows(result.pointer))
    }

    /// Runs one statement and returns the number of rows it inserted, updated or deleted.
    @discardableResult
    public func execute(_ query: PostgresQuery, logger: Logger? = nil) throws(PostgresError) -> Int {
        let result = try run(query, logger: logger ?? self.logger)
        return Self.affectedRows(result.pointer)
    }

    /// Runs several `;`-separated statements through the simple query protocol (e.g. a migration
    /// file). The script cannot have parameters.
    public func executeScript(_ script: PostgresQuery, logger: Logger? = nil) throws(PostgresError) {
        guard script.bindings.count == 0 else {
            var error = PostgresError(.unexpectedResult)
            error.reason = "a script cannot have parameters"
            throw error
        }
        let handle = try connectedHandle()
        try sendDeferredBegin(handle)
        (logger ?? self.logger).trace("postgres script", metadata: ["postgres.sql": "\(script.sql)"])
        _ = try check(PQexec(handle, script.sql), handle)
    }

    // MARK: - Transactions

    /// Runs `body` between `BEGIN` and `COMMIT` on this connection, rolling back if it throws.
    /// Runs once: the retrying variant is `PostgresClient.withTransaction`.
    @discardableResult
    public nonisolated(nonsending) func withTransaction<Result>(
        isolation: PostgresIsolationLevel? = nil,
        readOnly: Bool = false,
        logger: Logger? = nil,
        _ body: nonisolated(nonsending) (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await begin(isolation: isolation, readOnly: readOnly, logger: logger)
        let result: Result
        do {
            result = try await body(self)
        } catch {
            await rollback(logger: logger)
            throw error
        }
        try await commit(logger: logger)
        return result
    }

    func begin(isolation: PostgresIsolationLevel?, readOnly: Bool, logger: Logger?) throws(PostgresError) {
        var sql = "BEGIN"
        if let isolation { sql += " ISOLATION LEVEL " + isolation.rawValue }
        if readOnly { sql += " READ ONLY" }
        let handle = try connectedHandle()
        guard deferredBegin == nil, PQtransactionStatus(handle) == PQTRANS_IDLE else {
            // Not at the start of a transaction: let the server say what it says about it.
            try simple(sql, logger: logger)
            return
        }
        deferredBegin = sql
    }

    /// Commits; refuses (and rolls back) when an earlier statement already aborted the
    /// transaction, since `COMMIT` would silently roll back.
    func commit(logger: Logger?) throws(PostgresError) {
        let handle = try connectedHandle()
        if deferredBegin != nil {
            // No statement ran: there is nothing to commit.
            deferredBegin = nil
            return
        }
        switch PQtransactionStatus(handle) {
        case PQTRANS_INTRANS:
            try simple("COMMIT", logger: logger)
        case PQTRANS_INERROR:
            rollback(logger: logger)
            var error = PostgresError(.unexpectedResult)
            error.reason = "transaction aborted by an earlier error; rolled back"
            throw error
        default:
            var error = PostgresError(.unexpectedResult)
            error.reason = "no transaction to commit: the body ended it"
            throw error
        }
    }

    /// Rolls back if a transaction is open; a broken connection needs nothing.
    func rollback(logger: Logger?) {
        deferredBegin = nil
        guard case .connected(let handle) = state else { return }
        switch PQtransactionStatus(handle) {
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            do {
                try simple("ROLLBACK", logger: logger)
            } catch {
                (logger ?? self.logger).warning("postgres ROLLBACK failed", metadata: ["error": "\(error)"])
            }
        default:
            return
        }
    }

    private func simple(_ sql: String, logger: Logger?) throws(PostgresError) {
        let handle = try connectedHandle()
        try sendDeferredBegin(handle)
        (logger ?? self.logger).trace("postgres query", metadata: ["postgres.sql": "\(sql)"])
        _ = try check(PQexec(handle, sql), handle)
    }

    // MARK: - COPY FROM STDIN

    /// Streams rows into `COPY … FROM STDIN` (text format) and returns how many were copied.
    /// Rows are buffered and sent in chunks of about 64 KiB. If `body` throws, the COPY is
    /// aborted (nothing is loaded) and the error is rethrown; server errors are thrown as such.
    @discardableResult
    public nonisolated(nonsending) func copyFrom(
        _ statement: PostgresQuery,
        logger: Logger? = nil,
        _ body: nonisolated(nonsending) (PostgresCopyWriter) async throws -> Void
    ) async throws -> Int {
        try await beginCopy(statement, logger: logger)
        let writer = PostgresCopyWriter(connection: self)
        do {
            try await body(writer)
            try await writer.flush()
        } catch {
            try await abortCopy(after: error)
            throw error
        }
        return try await endCopy(failure: nil)
    }

    func beginCopy(_ statement: PostgresQuery, logger: Logger?) throws(PostgresError) {
        guard statement.bindings.count == 0 else {
            var error = PostgresError(.unexpectedResult)
            error.reason = "COPY cannot have parameters"
            throw error
        }
        let handle = try connectedHandle()
        try sendDeferredBegin(handle)
        (logger ?? self.logger).trace("postgres copy", metadata: ["postgres.sql": "\(statement.sql)"])
        guard let raw = PQexec(handle, statement.sql) else { throw lostConnection(handle) }
        let result = PostgresResult(raw)
        switch PQresultStatus(raw) {
        case PGRES_COPY_IN:
            copyInProgress = true
            return
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            throw serverError(result, handle)
        default:
            var error = PostgresError(.unexpectedResult)
            error.reason = "copyFrom needs a COPY … FROM STDIN statement"
            throw error
        }
    }

    func sendCopyData(_ chunk: [UInt8]) throws(PostgresError) {
        let handle = try connectedHandle()
        guard copyInProgress else {
            var error = PostgresError(.unexpectedResult)
            error.reason = "no COPY in progress"
            throw error
        }
        let sent = chunk.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1 else {
            // Usually the server rejected the data and ended the COPY; its error is the useful one.
            // libpq's message is read first: draining may find the connection gone and free it.
            copyInProgress = false
            let message = String(cString: PQerrorMessage(handle))
            _ = try drainCopyResults(handle)
            throw lostConnection(handle, message: message)
        }
    }

    func endCopy(failure: String?) throws(PostgresError) -> Int {
        let handle = try connectedHandle()
        guard copyInProgress else { return 0 }
        copyInProgress = false
        guard PQputCopyEnd(handle, failure) == 1 else {
            let message = String(cString: PQerrorMessage(handle))
            _ = try drainCopyResults(handle)
            throw lostConnection(handle, message: message)
        }
        return try drainCopyResults(handle)
    }

    /// Reads the COPY's outcome: the number of rows copied, or the server's error.
    private func drainCopyResults(_ handle: OpaquePointer) throws(PostgresError) -> Int {
        var firstError: PostgresError?
        var copied = 0
        // A COPY yields one result, then NULL; the bound only guards against a confused peer.
        // `serverError` frees the connection when it finds it lost: nothing touches `handle` after.
        for _ in 0..<16 where isCurrent(handle) {
            guard let raw = PQgetResult(handle) else { break }
            let result = PostgresResult(raw)
            switch PQresultStatus(raw) {
            case PGRES_COMMAND_OK:
                copied = Self.affectedRows(raw)
            case PGRES_COPY_IN:
                _ = PQputCopyEnd(handle, "unexpected COPY state")
            default:
                if firstError == nil { firstError = serverError(result, handle) }
            }
        }
        if isCurrent(handle), PQstatus(handle) == CONNECTION_BAD { markBroken(handle) }
        if let firstError { throw firstError }
        return copied
    }

    /// Ends an aborted COPY. The server's "COPY from stdin failed" answer is expected and
    /// dropped; only a lost connection is reported.
    private func abortCopy(after error: any Error) throws(PostgresError) {
        guard copyInProgress else { return }
        do {
            _ = try endCopy(failure: "aborted by client")
        } catch let failure where failure.isConnectionError {
            throw failure
        } catch {
            return
        }
    }

    // MARK: - Pool hooks

    /// Makes the connection usable for a new lease: opens it if it never was or broke, and
    /// replaces it if the server closed it while idle (e.g. after a restart).
    func prepareForUse() throws(PostgresError) {
        switch state {
        case .connected(let handle):
            if isAlive(handle) { return }
            logger.info("postgres connection found dead; reconnecting")
            PQfinish(handle)
            state = .broken
            try open()
        case .disconnected, .broken:
            try open()
        case .closed:
            throw PostgresError(.connectionClosed)
        }
    }

    /// One statement on a freshly leased connection, in a single visit to its thread.
    func queryLeased(_ query: PostgresQuery, logger: Logger?) throws(PostgresError) -> PostgresRows {
        try prepareForUse()
        defer { cleanUpAfterUse() }
        return try self.query(query, logger: logger)
    }

    /// Returns the connection to a clean state after a lease: rolls back a transaction the body
    /// left open, deallocates evicted prepared statements, drops a connection in a state it
    /// cannot recover from.
    func cleanUpAfterUse() {
        // A BEGIN never sent leaves nothing open on the server.
        deferredBegin = nil
        guard case .connected(let handle) = state else { return }
        if canceller.takeSent() {
            // The request may still be on its way and would cancel the next lease's statement.
            markBroken(handle, reason: "postgres connection closed after a cancel request")
            return
        }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            break
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            logger.warning("postgres connection returned inside a transaction; rolling back")
            rollback(logger: nil)
        default:
            logger.warning("postgres connection returned mid-statement; closing it")
            markBroken(handle)
            return
        }
        guard case .connected(let handle) = state, PQtransactionStatus(handle) == PQTRANS_IDLE else { return }
        let stale = statements.takePendingDeallocations()
        if !stale.isEmpty {
            do {
                try simple(stale.map { "DEALLOCATE \($0)" }.joined(separator: "; "), logger: nil)
            } catch {
                logger.debug("postgres DEALLOCATE failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: - Internals

    /// Whether the caller runs on this connection's own thread (always, inside the actor).
    var isOnOwnThread: Bool { executors.serial.isCurrentThread }

    func open() throws(PostgresError) {
        if case .closed = state { throw PostgresError(.connectionClosed) }
        let parameters = configuration.libpqParameters
        let keywords = parameters.map { strdup($0.0) } + [nil]
        let values = parameters.map { strdup($0.1) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let handle = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in
                PQconnectdbParams(k.baseAddress, v.baseAddress, 0)
            }
        }
        guard let handle else {
            state = .disconnected
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle))
            PQfinish(handle)
            state = .disconnected
            logger.debug("postgres connect failed", metadata: ["postgres.host": "\(configuration.host)"])
            throw PostgresError(.connectionFailed, message: message)
        }
        notices.sawFatal = false
        PQsetNoticeReceiver(handle, { context, result in
            guard let context, let result else { return }
            Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue().receive(result)
        }, Unmanaged.passUnretained(notices).toOpaque())
        statements.removeAll()
        state = .connected(handle)
        canceller.install(from: handle)
        logger.debug("postgres connection opened", metadata: ["postgres.backend.pid": "\(PQbackendPID(handle))"])
    }

    /// Zero-timeout poll: an idle connection's socket has nothing to read unless the server sent
    /// something unprompted (a FATAL before closing, EOF, a notification).
    private func isAlive(_ handle: OpaquePointer) -> Bool {
        guard PQstatus(handle) == CONNECTION_OK, !notices.sawFatal else { return false }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        if ready == 0 { return true }
        if ready < 0 { return false }
        guard PQconsumeInput(handle) == 1 else { return false }
        while let notification = PQnotifies(handle) { PQfreemem(notification) }
        return PQstatus(handle) == CONNECTION_OK && !notices.sawFatal
    }

    private func connectedHandle() throws(PostgresError) -> OpaquePointer {
        switch state {
        case .connected(let handle):
            return handle
        case .broken:
            var error = PostgresError(.connectionLost)
            error.reason = "the connection broke earlier"
            throw error
        case .disconnected, .closed:
            throw PostgresError(.connectionClosed)
        }
    }

    private func markBroken(_ handle: OpaquePointer, reason: String = "postgres connection lost") {
        guard case .connected(let current) = state, current == handle else { return }
        PQfinish(handle)
        canceller.install(from: nil)
        state = .broken
        copyInProgress = false
        deferredBegin = nil
        statements.removeAll()
        logger.info("\(reason)")
    }

    /// The connection's error as a lost connection, and the connection closed. `message`, when
    /// given, was read from libpq before something else could have freed `handle`.
    private func lostConnection(_ handle: OpaquePointer, message: String? = nil) -> PostgresError {
        let text = message ?? (isCurrent(handle) ? String(cString: PQerrorMessage(handle)) : "postgres connection lost")
        markBroken(handle)
        return PostgresError(.connectionLost, message: text)
    }

    /// Whether `handle` is still this connection's (not freed by `markBroken`).
    private func isCurrent(_ handle: OpaquePointer) -> Bool {
        guard case .connected(let current) = state else { return false }
        return current == handle
    }

    private func run(_ query: PostgresQuery, logger: Logger) throws(PostgresError) -> PostgresResult {
        canceller.statementStarted()
        defer { canceller.statementEnded() }
        if let error = query.bindings.encodingError { throw error }
        guard query.bindings.count <= Int(UInt16.max) else { throw PostgresError(.tooManyParameters) }
        let handle = try connectedHandle()
        logger.trace("postgres query", metadata: ["postgres.sql": "\(query.sql)"])
        if let begin = deferredBegin {
            deferredBegin = nil
            return try runAfterBegin(begin, query, handle)
        }
        guard statements.capacity > 0 else {
            let raw = Self.withParameters(query.bindings) { count, types, values, lengths, formats in
                PQexecParams(handle, query.sql, count, types, values, lengths, formats, 1)
            }
            return try check(raw, handle)
        }
        do {
            return try runPrepared(query, handle)
        } catch let error where Self.isStalePreparedStatement(error) && PQtransactionStatus(handle) == PQTRANS_IDLE {
            // Nothing ran: the statement was refused before execution. Prepare afresh once.
            statements.remove(sql: query.sql, types: query.bindings.types)
            return try runPrepared(query, handle)
        }
    }

    private func runPrepared(_ query: PostgresQuery, _ handle: OpaquePointer) throws(PostgresError) -> PostgresResult {
        let name: String
        if let cached = statements.lookup(sql: query.sql, types: query.bindings.types) {
            name = cached
        } else {
            name = statements.nextName()
            let prepared = query.bindings.types.withUnsafeBufferPointer { types in
                PQprepare(handle, name, query.sql, Int32(types.count), types.baseAddress)
            }
            _ = try check(prepared, handle)
            statements.insert(name: name, sql: query.sql, types: query.bindings.types)
        }
        let raw = Self.withParameters(query.bindings) { count, _, values, lengths, formats in
            PQexecPrepared(handle, name, count, values, lengths, formats, 1)
        }
        do {
            return try check(raw, handle)
        } catch {
            if Self.isStalePreparedStatement(error) { statements.remove(sql: query.sql, types: query.bindings.types) }
            throw error
        }
    }

    /// Sends a deferred `BEGIN` on its own, before something that cannot be pipelined with it.
    private func sendDeferredBegin(_ handle: OpaquePointer) throws(PostgresError) {
        guard let begin = deferredBegin else { return }
        deferredBegin = nil
        do {
            _ = try check(PQexec(handle, begin), handle)
        } catch {
            throw error.beforeTransaction()
        }
    }

    /// The transaction's `BEGIN` and its first statement in one round trip: both are queued in
    /// libpq's pipeline mode with one Sync, then their results are read in order. A connection
    /// lost here is reported `beforeTransaction`: nothing of the transaction can have committed.
    private func runAfterBegin(_ begin: String, _ query: PostgresQuery, _ handle: OpaquePointer) throws(PostgresError) -> PostgresResult {
        guard PQenterPipelineMode(handle) == 1 else {
            do {
                _ = try check(PQexec(handle, begin), handle)
            } catch {
                throw error.beforeTransaction()
            }
            return try statements.capacity > 0 ? runPrepared(query, handle) : check(Self.withParameters(query.bindings) {
                PQexecParams(handle, query.sql, $0, $1, $2, $3, $4, 1)
            }, handle)
        }
        var sent = PQsendQueryParams(handle, begin, 0, nil, nil, nil, nil, 0) == 1
        var newName: String?
        if sent {
            if statements.capacity > 0 {
                let name: String
                if let cached = statements.lookup(sql: query.sql, types: query.bindings.types) {
                    name = cached
                } else {
                    name = statements.nextName()
                    newName = name
                    sent = query.bindings.types.withUnsafeBufferPointer { types in
                        PQsendPrepare(handle, name, query.sql, Int32(types.count), types.baseAddress)
                    } == 1
                }
                if sent {
                    sent = Self.withParameters(query.bindings) { count, _, values, lengths, formats in
                        PQsendQueryPrepared(handle, name, count, values, lengths, formats, 1)
                    } == 1
                }
            } else {
                sent = Self.withParameters(query.bindings) { count, types, values, lengths, formats in
                    PQsendQueryParams(handle, query.sql, count, types, values, lengths, formats, 1)
                } == 1
            }
        }
        if sent { sent = PQpipelineSync(handle) == 1 }
        guard sent else { throw lostConnection(handle).beforeTransaction() }

        // Each queued command yields its result(s) and then NULL; the Sync yields PIPELINE_SYNC.
        // BEGIN, [PREPARE,] the statement: at most three commands, so the bound is generous.
        var firsts: [PostgresResult?] = []
        var current: PostgresResult?
        var synced = false
        for _ in 0..<32 {
            guard let raw = PQgetResult(handle) else {
                firsts.append(current)
                current = nil
                if PQstatus(handle) == CONNECTION_BAD { break }
                continue
            }
            if PQresultStatus(raw) == PGRES_PIPELINE_SYNC {
                PQclear(raw)
                synced = true
                break
            }
            if current == nil { current = PostgresResult(raw) } else { PQclear(raw) }
        }
        guard synced, PQexitPipelineMode(handle) == 1 else {
            if PQstatus(handle) == CONNECTION_BAD { throw lostConnection(handle).beforeTransaction() }
            markBroken(handle)
            var error = PostgresError(.unexpectedResult)
            error.reason = "the pipelined BEGIN did not complete"
            throw error
        }
        let expected = newName == nil ? 2 : 3
        guard firsts.count == expected else {
            markBroken(handle)
            var error = PostgresError(.unexpectedResult)
            error.reason = "the pipelined BEGIN returned \(firsts.count) results for \(expected) commands"
            throw error
        }
        do {
            _ = try check(firsts[0], handle)
        } catch {
            throw error.isConnectionError ? error.beforeTransaction() : error
        }
        if let newName {
            _ = try check(firsts[1], handle)
            statements.insert(name: newName, sql: query.sql, types: query.bindings.types)
        }
        do {
            return try check(firsts[expected - 1], handle)
        } catch {
            guard Self.isStalePreparedStatement(error) else { throw error }
            statements.remove(sql: query.sql, types: query.bindings.types)
            var stale = error
            stale.staleBeforeTransaction = newName == nil
            throw stale
        }
    }

    /// 26000: the prepared statement is gone (DISCARD ALL); 0A000: its cached plan no longer
    /// fits the table (the schema changed).
    private static func isStalePreparedStatement(_ error: PostgresError) -> Bool {
        error.code == .server && (error.sqlState == "26000" || error.sqlState == "0A000")
    }

    /// Turns libpq's answer into a result or the error it carries.
    private func check(_ raw: OpaquePointer?, _ handle: OpaquePointer) throws(PostgresError) -> PostgresResult {
        guard let raw else { throw lostConnection(handle) }
        return try check(PostgresResult(raw), handle)
    }

    private func check(_ result: PostgresResult?, _ handle: OpaquePointer) throws(PostgresError) -> PostgresResult {
        guard let result else { throw lostConnection(handle) }
        let raw = result.pointer
        switch PQresultStatus(raw) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return result
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            // Leaving COPY mode cleanly needs the COPY API; this connection is not reused.
            markBroken(handle)
            var error = PostgresError(.unexpectedResult)
            error.reason = "COPY statements need copyFrom"
            throw error
        default:
            throw serverError(result, handle)
        }
    }

    private func serverError(_ result: PostgresResult, _ handle: OpaquePointer) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result.pointer, Int32(code)).map { String(cString: $0) }
        }
        let lost = PQstatus(handle) == CONNECTION_BAD
        var error = PostgresError(lost ? .connectionLost : .server)
        error.sqlState = field(UInt8(ascii: "C"))
        error.severity = field(UInt8(ascii: "V"))
        error.message = field(UInt8(ascii: "M"))
        error.detail = field(UInt8(ascii: "D"))
        error.hint = field(UInt8(ascii: "H"))
        error.schemaName = field(UInt8(ascii: "s"))
        error.tableName = field(UInt8(ascii: "t"))
        error.columnName = field(UInt8(ascii: "c"))
        error.dataTypeName = field(UInt8(ascii: "d"))
        error.constraintName = field(UInt8(ascii: "n"))
        if error.message == nil, let text = PQresultErrorMessage(result.pointer) {
            error.message = String(cString: text)
        }
        if lost { markBroken(handle) }
        return error
    }

    /// The row count of the command tag (`INSERT 0 3` → 3), 0 when it has none.
    private static func affectedRows(_ result: OpaquePointer) -> Int {
        guard var digit = PQcmdTuples(result) else { return 0 }
        var count = 0
        while digit.pointee >= 0x30 && digit.pointee <= 0x39 {
            count = count &* 10 &+ Int(digit.pointee - 0x30)
            digit += 1
        }
        return count
    }

    /// Lays the bindings out as libpq's parallel arrays, without copying the value bytes.
    private static func withParameters<R>(
        _ bindings: PostgresBindings,
        _ body: (
            Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
            UnsafePointer<Int32>?
        ) -> R
    ) -> R {
        let count = bindings.count
        guard count > 0 else { return body(0, nil, nil, nil, nil) }
        return bindings.types.withUnsafeBufferPointer { types in
            bindings.lengths.withUnsafeBufferPointer { lengths in
                bindings.bytes.withUnsafeBytes { bytes in
                    withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { values in
                        withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { formats in
                            withUnsafeTemporaryAllocation(of: CChar.self, capacity: 1) { empty in
                                // libpq reads a NULL pointer as SQL NULL, so empty values need a real one.
                                let base = bytes.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) }
                                let fallback = UnsafePointer(empty.baseAddress!)
                                var offset = 0
                                for i in 0..<count {
                                    formats[i] = 1
                                    let length = Int(lengths[i])
                                    if length < 0 {
                                        values[i] = nil
                                    } else {
                                        values[i] = base.map { UnsafePointer($0 + offset) } ?? fallback
                                        offset += length
                                    }
                                }
                                return body(
                                    Int32(count), types.baseAddress, UnsafePointer(values.baseAddress),
                                    lengths.baseAddress, UnsafePointer(formats.baseAddress))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Receives server notices for one connection, on its thread (libpq calls it from inside the
/// connection's own calls). Remembers a FATAL, which the server sends just before closing.
private final class NoticeSink {
    var sawFatal = false
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func receive(_ result: OpaquePointer) {
        let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))).map { String(cString: $0) }
        let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        if severity == "FATAL" || severity == "PANIC" { sawFatal = true }
        // Notice text can quote data, so only its classification is logged.
        logger.debug(
            "postgres notice",
            metadata: ["postgres.severity": "\(severity ?? "?")", "postgres.sqlstate": "\(sqlState ?? "?")"])
    }
}

/// Prepared statements of one connection, keyed by SQL text and parameter types, evicting the
/// least recently used.
private struct StatementCache {
    private struct Key: Hashable {
        let sql: String
        let types: [UInt32]
    }

    let capacity: Int
    private var entries: [Key: (name: String, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0
    private var counter = 0
    private var pendingDeallocations: [String] = []

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    mutating func lookup(sql: String, types: [UInt32]) -> String? {
        let key = Key(sql: sql, types: types)
        guard let entry = entries[key] else { return nil }
        clock += 1
        entries[key] = (entry.name, clock)
        return entry.name
    }

    mutating func nextName() -> String {
        counter += 1
        return "feerecon_\(counter)"
    }

    mutating func insert(name: String, sql: String, types: [UInt32]) {
        clock += 1
        entries[Key(sql: sql, types: types)] = (name, clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries[oldest.key] = nil
            pendingDeallocations.append(oldest.value.name)
        }
    }

    mutating func remove(sql: String, types: [UInt32]) {
        if let entry = entries.removeValue(forKey: Key(sql: sql, types: types)) {
            pendingDeallocations.append(entry.name)
        }
    }

    mutating func removeAll() {
        entries.removeAll()
        pendingDeallocations.removeAll()
    }

    mutating func takePendingDeallocations() -> [String] {
        defer { pendingDeallocations.removeAll() }
        return pendingDeallocations
    }
}
