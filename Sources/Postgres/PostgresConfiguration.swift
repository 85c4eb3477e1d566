import struct Foundation.URLComponents

/// Where and how to connect, and how the pool behaves. The password never appears in
/// `description`.
public struct PostgresConfiguration: Sendable, CustomStringConvertible {
    /// libpq's `sslmode`.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable
        case allow
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// Pool sizing and waiting.
    public struct Pool: Sendable {
        /// Connections opened at most; they are opened lazily, on demand.
        public var maximumConnections: Int = 8
        /// How long a caller waits for a free connection before `PostgresError.Code.poolTimeout`;
        /// nil waits indefinitely.
        public var acquireTimeout: Duration? = .seconds(30)

        public init(maximumConnections: Int = 8, acquireTimeout: Duration? = .seconds(30)) {
            self.maximumConnections = maximumConnections
            self.acquireTimeout = acquireTimeout
        }
    }

    /// How `withTransaction` reruns a body that failed with 40001 or 40P01.
    public struct TransactionRetry: Sendable {
        /// Runs of the body at most, the first included.
        public var maximumAttempts: Int = 5
        /// Delay before the second run; doubled each time up to `maximumDelay`, with jitter.
        public var initialDelay: Duration = .milliseconds(5)
        public var maximumDelay: Duration = .milliseconds(500)

        public init(
            maximumAttempts: Int = 5,
            initialDelay: Duration = .milliseconds(5),
            maximumDelay: Duration = .milliseconds(500)
        ) {
            self.maximumAttempts = maximumAttempts
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }

        /// No reruns.
        public static let never = TransactionRetry(maximumAttempts: 1)
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Shown in `pg_stat_activity`.
    public var applicationName: String?
    public var tls: TLSMode = .prefer
    /// CA file for `verifyCA` / `verifyFull`.
    public var rootCertificatePath: String?
    /// Time allowed for opening one connection (libpq counts whole seconds, at least 2).
    public var connectTimeout: Duration = .seconds(10)
    /// Session settings sent at connect time, e.g. `["statement_timeout": "30s"]`.
    public var serverSettings: [String: String] = [:]
    /// Statements prepared per connection and reused by SQL text (`PQprepare`/`PQexecPrepared`);
    /// 0 sends every statement unnamed (`PQexecParams`).
    public var preparedStatementCacheCapacity: Int = 0
    public var pool = Pool()
    public var transactionRetry = TransactionRetry()

    public init(
        host: String = "127.0.0.1",
        port: Int = 5432,
        username: String,
        password: String? = nil,
        database: String,
        applicationName: String? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.applicationName = applicationName
    }

    /// Parses `postgresql://user:password@host:port/database?application_name=…&sslmode=…`
    /// (also `postgres://`). Understood query keys: `application_name`, `sslmode`,
    /// `sslrootcert`, `connect_timeout` (seconds).
    public init(url: String) throws(PostgresError) {
        func invalid(_ reason: String) -> PostgresError {
            var error = PostgresError(.invalidConfiguration)
            error.reason = reason
            return error
        }
        guard let components = URLComponents(string: url) else { throw invalid("not a URL") }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgresql" || scheme == "postgres" else {
            throw invalid("scheme must be postgresql:// or postgres://")
        }
        var host = components.host ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw invalid("no host") }
        guard let username = components.user, !username.isEmpty else { throw invalid("no user name") }
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        if database.isEmpty { database = username }
        guard !database.contains("/") else { throw invalid("database name contains '/'") }

        self.init(
            host: host, port: components.port ?? 5432, username: username,
            password: components.password, database: database)

        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "application_name":
                applicationName = value
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else { throw invalid("unknown sslmode") }
                tls = mode
            case "sslrootcert":
                rootCertificatePath = value
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0 else { throw invalid("connect_timeout must be whole seconds") }
                connectTimeout = .seconds(seconds)
            default:
                throw invalid("unsupported URL parameter \(item.name)")
            }
        }
    }

    /// The URL without the password.
    public var description: String {
        var text = "postgresql://\(username)@"
        text += host.contains(":") ? "[\(host)]" : host
        text += ":\(port)/\(database)"
        var parameters: [String] = []
        if let applicationName { parameters.append("application_name=\(applicationName)") }
        if tls != .prefer { parameters.append("sslmode=\(tls.rawValue)") }
        if !parameters.isEmpty { text += "?" + parameters.joined(separator: "&") }
        return text
    }

    /// Keyword/value pairs for `PQconnectdbParams`.
    var libpqParameters: [(String, String)] {
        var parameters: [(String, String)] = [
            ("host", host),
            ("port", String(port)),
            ("user", username),
            ("dbname", database),
            ("sslmode", tls.rawValue),
            ("connect_timeout", String(max(2, Int(connectTimeout.components.seconds)))),
            ("client_encoding", "UTF8"),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("keepalives_interval", "10"),
            ("keepalives_count", "3"),
        ]
        if let password { parameters.append(("password", password)) }
        if let applicationName { parameters.append(("application_name", applicationName)) }
        if let rootCertificatePath { parameters.append(("sslrootcert", rootCertificatePath)) }
        if !serverSettings.isEmpty {
            let options = serverSettings.sorted { $0.key < $1.key }.map { key, value in
                "-c \(Self.escapeOption(key))=\(Self.escapeOption(value))"
            }
            parameters.append(("options", options.joined(separator: " ")))
        }
        return parameters
    }

    /// Backslash-escapes spaces and backslashes, as the `options` keyword requires.
    private static func escapeOption(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == " " || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
