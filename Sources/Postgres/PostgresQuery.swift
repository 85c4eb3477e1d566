/// A SQL statement whose interpolated values are sent as `$n` parameters, never spliced into text.
///
/// ```swift
/// let rows = try await client.query("SELECT name FROM dossiers WHERE id = ANY(\(ids)) AND agency = \(agency)")
/// ```
/// `init(unsafeSQL:)` is the only way to run text that was not written as a literal.
public struct PostgresQuery: Sendable, CustomStringConvertible {
    /// The statement text with `$1`, `$2`… placeholders.
    public private(set) var sql: String
    /// The parameter values, in placeholder order.
    public private(set) var bindings: PostgresBindings
    /// UTF-8 offsets of each placeholder's `$`, so fragments can be renumbered when spliced.
    private var placeholderOffsets: [Int]

    /// A statement from text that may have been assembled at run time. Nothing in `sql` is
    /// escaped or parameterised: never build it from untrusted input.
    public init(unsafeSQL sql: String) {
        self.sql = sql
        self.bindings = PostgresBindings()
        self.placeholderOffsets = []
    }

    /// Appends another query, renumbering its placeholders to follow this one's.
    public mutating func append(_ other: PostgresQuery) {
        let base = bindings.count
        let text = Array(other.sql.utf8)
        var cursor = 0
        for (k, offset) in other.placeholderOffsets.enumerated() {
            sql += String(decoding: text[cursor..<offset], as: UTF8.self)
            var end = offset + 1
            while end < text.count, text[end] >= UInt8(ascii: "0"), text[end] <= UInt8(ascii: "9") { end += 1 }
            placeholderOffsets.append(sql.utf8.count)
            sql += "$\(base + k + 1)"
            cursor = end
        }
        sql += String(decoding: text[cursor...], as: UTF8.self)
        bindings.append(contentsOf: other.bindings)
    }

    /// Both queries, the second's placeholders renumbered.
    public static func + (lhs: PostgresQuery, rhs: PostgresQuery) -> PostgresQuery {
        var result = lhs
        result.append(rhs)
        return result
    }

    public static func += (lhs: inout PostgresQuery, rhs: PostgresQuery) {
        lhs.append(rhs)
    }

    /// The SQL text and the number of parameters; never the values.
    public var description: String {
        "\(sql) [\(bindings.count) parameter\(bindings.count == 1 ? "" : "s")]"
    }
}

extension PostgresQuery: ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.bindings = stringInterpolation.bindings
        self.placeholderOffsets = stringInterpolation.placeholderOffsets
    }

    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        fileprivate var sql: String
        fileprivate var bindings: PostgresBindings
        fileprivate var placeholderOffsets: [Int]

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql = ""
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            bindings = PostgresBindings(capacity: interpolationCount)
            placeholderOffsets = []
            placeholderOffsets.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// Binds `value` as the next `$n` parameter (NULL for `nil`).
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            bind(value)
        }

        /// Binds an optional as the next `$n` parameter, NULL when nil.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            bind(value)
        }

        private mutating func bind<Value: PostgresEncodable>(_ value: Value) {
            bindings.append(value)
            placeholderOffsets.append(sql.utf8.count)
            sql += "$"
            sql += String(bindings.count)
        }

        /// Splices another query in place, renumbering its parameters.
        public mutating func appendInterpolation(fragment: PostgresQuery) {
            var query = PostgresQuery(unsafeSQL: sql)
            query.bindings = bindings
            query.placeholderOffsets = placeholderOffsets
            query.append(fragment)
            sql = query.sql
            bindings = query.bindings
            placeholderOffsets = query.placeholderOffsets
        }

        /// A quoted identifier (`"name"`, inner quotes doubled), for names that cannot be
        /// parameters, such as a database in `CREATE DATABASE`.
        public mutating func appendInterpolation(identifier: String) {
            sql += "\""
            for character in identifier {
                if character == "\"" { sql += "\"" }
                sql.append(character)
            }
            sql += "\""
        }
    }
}

/// Parameter values in binary format, each with its type OID; NULL has length -1.
public struct PostgresBindings: Sendable {
    var types: [UInt32]
    var lengths: [Int32]
    var bytes: [UInt8]
    /// The first value that failed to encode; the statement is refused before it is sent.
    var encodingError: PostgresError?

    public init() {
        types = []
        lengths = []
        bytes = []
    }

    init(capacity: Int) {
        self.init()
        types.reserveCapacity(capacity)
        lengths.reserveCapacity(capacity)
        bytes.reserveCapacity(capacity * 8)
    }

    /// The number of parameters.
    public var count: Int { types.count }

    /// The type OIDs, in order.
    public var dataTypes: [PostgresDataType] { types.map(PostgresDataType.init(rawValue:)) }

    /// Appends one parameter.
    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        types.append(Value.postgresType.rawValue)
        guard !value.isPostgresNull else {
            lengths.append(-1)
            return
        }
        let start = bytes.count
        do {
            try value.encode(into: &bytes)
            guard let length = Int32(exactly: bytes.count - start) else {
                throw PostgresError.encodingFailed(reason: "a \(Value.self) parameter over 2 GiB")
            }
            lengths.append(length)
        } catch {
            bytes.removeSubrange(start...)
            lengths.append(-1)
            if encodingError == nil {
                encodingError = error as? PostgresError
                    ?? .encodingFailed(reason: "a \(Value.self) parameter could not be encoded")
            }
        }
    }

    mutating func append(contentsOf other: PostgresBindings) {
        types.append(contentsOf: other.types)
        lengths.append(contentsOf: other.lengths)
        bytes.append(contentsOf: other.bytes)
        if encodingError == nil { encodingError = other.encodingError }
    }
}
