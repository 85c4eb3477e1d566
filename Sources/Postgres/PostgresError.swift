/// An error from the database layer: connecting, the server, encoding, decoding or the pool.
///
/// `description` is safe for logs and metrics: it names the kind, the SQLSTATE and schema
/// identifiers (constraint, table, column, type) but never a bound value or server text that can
/// echo data (`message`, `detail`, `hint` and the libpq message are properties only).
public struct PostgresError: Error, Sendable {
    /// The kind of failure; compare with the static members, e.g. `error.code == .server`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable {
            case connectionFailed
            case connectionLost
            case connectionClosed
            case server
            case encoding
            case decoding
            case unexpectedResult
            case tooManyParameters
            case invalidConfiguration
            case poolTimeout
            case poolShutdown
        }

        fileprivate let base: Base

        /// Could not open a connection (unreachable, authentication, unknown database…).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection broke while a statement was in flight: whether it took effect is unknown.
        public static let connectionLost = Code(base: .connectionLost)
        /// The connection had already been closed by this process.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The server rejected a statement; see `sqlState`.
        public static let server = Code(base: .server)
        /// A bound value could not be encoded.
        public static let encoding = Code(base: .encoding)
        /// A column could not be decoded into the requested Swift type.
        public static let decoding = Code(base: .decoding)
        /// The server answered in a way the call did not expect (e.g. rows from `copyFrom`).
        public static let unexpectedResult = Code(base: .unexpectedResult)
        /// More than 65,535 parameters in one statement.
        public static let tooManyParameters = Code(base: .tooManyParameters)
        /// A configuration or URL that cannot be used.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// No connection became free within the pool's acquire timeout.
        public static let poolTimeout = Code(base: .poolTimeout)
        /// The pool has been shut down.
        public static let poolShutdown = Code(base: .poolShutdown)

        public var description: String { base.rawValue }
    }

    /// What went wrong, as a short stable name.
    public let code: Code

    /// The five-character SQLSTATE, for server errors (and some connection errors).
    public var sqlState: String?
    /// Severity as the server sent it, untranslated (`ERROR`, `FATAL`, `PANIC`).
    public var severity: String?
    /// The server's primary message, or libpq's for connection errors. May echo data: not for logs.
    public var message: String?
    /// The server's detail line. May echo data: not for logs.
    public var detail: String?
    /// The server's hint.
    public var hint: String?
    public var schemaName: String?
    public var tableName: String?
    /// The column the server error concerns, or the result column that failed to decode.
    public var columnName: String?
    public var dataTypeName: String?
    public var constraintName: String?

    /// For decoding errors: the result column's position, the Swift type asked for, and the
    /// column's PostgreSQL type.
    public var columnIndex: Int?
    public var swiftType: String?
    public var postgresType: PostgresDataType?
    /// For decoding and encoding errors: what was wrong, in words that never include the value.
    public var reason: String?

    init(_ code: Code, message: String? = nil) {
        self.code = code
        self.message = message
    }

    // MARK: SQLSTATE conveniences

    /// 23505: a unique constraint or index rejected the row.
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// 23503: a foreign key rejected the row.
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// 23514: a check constraint rejected the row.
    public var isCheckViolation: Bool { sqlState == "23514" }
    /// 23502: a NOT NULL column got NULL.
    public var isNotNullViolation: Bool { sqlState == "23502" }
    /// 40001: the transaction could not be serialized; running it again may succeed.
    public var isSerializationFailure: Bool { sqlState == "40001" }
    /// 40P01: the transaction was chosen as a deadlock victim.
    public var isDeadlock: Bool { sqlState == "40P01" }
    /// 55P03: a lock could not be taken (`NOWAIT`, `lock_timeout`).
    public var isLockNotAvailable: Bool { sqlState == "55P03" }
    /// 57014: the statement was cancelled (`statement_timeout`, a cancel request).
    public var isQueryCanceled: Bool { sqlState == "57014" }

    /// The server refused the statement's data: a data exception (class 22) or an integrity
    /// constraint violation (class 23). Running it again unchanged fails the same way; without the
    /// offending row it may not.
    public var isDataRefusal: Bool {
        code == .server && (sqlState?.hasPrefix("22") == true || sqlState?.hasPrefix("23") == true)
    }

    /// The error says the transaction can simply be run again (40001 or 40P01).
    public var isTransient: Bool { isSerializationFailure || isDeadlock }

    /// The connection is unusable: it could not be opened, broke, or was closed.
    public var isConnectionError: Bool {
        code == .connectionFailed || code == .connectionLost || code == .connectionClosed
    }

    /// A connection error met while a transaction's `BEGIN` (sent with its first statement) was
    /// on its way: no `COMMIT` was sent, so nothing of the transaction took effect and running it
    /// again on another connection cannot apply anything twice.
    var lostBeforeTransaction = false

    func beforeTransaction() -> PostgresError {
        var error = self
        error.lostBeforeTransaction = isConnectionError
        return error
    }

    /// The transaction's first statement (sent with its `BEGIN`) was a cached prepared statement
    /// that no longer fits the schema: nothing else ran, its cache entry is gone, and running the
    /// transaction again prepares it afresh.
    var staleBeforeTransaction = false

}

extension PostgresError: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        var parts = [code.description]
        if let sqlState { parts.append("sqlState: \(sqlState)") }
        if let constraintName { parts.append("constraint: \(constraintName)") }
        if let schemaName, code == .server { parts.append("schema: \(schemaName)") }
        if let tableName { parts.append("table: \(tableName)") }
        if let columnName { parts.append("column: \(columnName)") }
        if let columnIndex { parts.append("columnIndex: \(columnIndex)") }
        if let dataTypeName { parts.append("dataType: \(dataTypeName)") }
        if let swiftType { parts.append("swiftType: \(swiftType)") }
        if let postgresType { parts.append("postgresType: \(postgresType)") }
        if let reason { parts.append("reason: \(reason)") }
        return "PostgresError(\(parts.joined(separator: ", ")))"
    }

    public var debugDescription: String { description }
}

extension PostgresError {
    static func encodingFailed(reason: String) -> PostgresError {
        var error = PostgresError(.encoding)
        error.reason = reason
        return error
    }
}
