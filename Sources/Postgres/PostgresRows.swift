import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one `PGresult`.
@usableFromInline
final class PostgresResult: @unchecked Sendable {
    // @unchecked: a PGresult is immutable once libpq hands it over, and libpq documents that it
    // may be read from any thread; this class only reads it and frees it once, in deinit.
    let pointer: OpaquePointer
    let rowCount: Int
    @usableFromInline let columnCount: Int

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        self.rowCount = Int(PQntuples(pointer))
        self.columnCount = Int(PQnfields(pointer))
    }

    deinit { PQclear(pointer) }

    @usableFromInline
    func columnName(_ column: Int) -> String {
        PQfname(pointer, Int32(column)).map { String(cString: $0) } ?? "?column?"
    }

    @usableFromInline
    func columnType(_ column: Int) -> PostgresDataType {
        PostgresDataType(PQftype(pointer, Int32(column)))
    }

    /// Exact, case-sensitive match on the name the server reported.
    func columnIndex(named name: String) -> Int? {
        name.withCString { wanted in
            for column in 0..<columnCount {
                if let reported = PQfname(pointer, Int32(column)), strcmp(reported, wanted) == 0 {
                    return column
                }
            }
            return nil
        }
    }

    /// The value's bytes, nil for NULL. Valid while this object lives.
    @usableFromInline
    func value(row: Int, column: Int) -> UnsafeRawBufferPointer? {
        let r = Int32(row)
        let c = Int32(column)
        if PQgetisnull(pointer, r, c) != 0 { return nil }
        return UnsafeRawBufferPointer(start: PQgetvalue(pointer, r, c), count: Int(PQgetlength(pointer, r, c)))
    }
}

/// A result column: its name and type.
public struct PostgresColumn: Sendable, Hashable {
    public let name: String
    public let dataType: PostgresDataType
}

/// The complete result of one statement: its rows (if any) and the number of rows it affected.
public struct PostgresRows: RandomAccessCollection, Sendable {
    private let result: PostgresResult?
    /// Rows inserted, updated, deleted, copied or selected, as the command tag reports.
    public let affectedRows: Int

    init(result: PostgresResult?, affectedRows: Int) {
        self.result = result
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { result?.rowCount ?? 0 }

    public subscript(position: Int) -> PostgresRow {
        precondition(position >= 0 && position < endIndex, "row index out of range")
        return PostgresRow(result: result!, row: position)
    }

    public var columns: [PostgresColumn] {
        guard let result else { return [] }
        return (0..<result.columnCount).map {
            PostgresColumn(name: result.columnName($0), dataType: result.columnType($0))
        }
    }

    /// Decodes every row into a tuple, e.g. `try rows.decode((Int64, String).self)`.
    @inlinable
    public func decode<each Column: PostgresDecodable>(
        _ types: (repeat each Column).Type
    ) throws(PostgresError) -> [(repeat each Column)] {
        var decoded: [(repeat each Column)] = []
        decoded.reserveCapacity(count)
        for row in self { decoded.append(try row.decode(types)) }
        return decoded
    }

    /// Decodes the single column of every row.
    @inlinable
    public func decode<Column: PostgresDecodable>(_ type: Column.Type) throws(PostgresError) -> [Column] {
        var decoded: [Column] = []
        decoded.reserveCapacity(count)
        for row in self { decoded.append(try row.decode(type)) }
        return decoded
    }
}

/// One result row. Decode it into a tuple in column order, or one column by name.
public struct PostgresRow: Sendable {
    @usableFromInline let result: PostgresResult
    @usableFromInline let row: Int

    init(result: PostgresResult, row: Int) {
        self.result = result
        self.row = row
    }

    public var columnCount: Int { result.columnCount }

    /// Decodes the whole row in column order: `let (id, name) = try row.decode((Int64, String).self)`.
    /// The tuple must have exactly as many elements as the row has columns.
    @inlinable
    public func decode<each Column: PostgresDecodable>(
        _: (repeat each Column).Type
    ) throws(PostgresError) -> (repeat each Column) {
        var arity = 0
        for _ in repeat (each Column).self { arity += 1 }
        try requireColumnCount(arity)
        var column = 0
        func next<T: PostgresDecodable>(_: T.Type) throws(PostgresError) -> T {
            defer { column += 1 }
            return try decode(column: column, as: T.self)
        }
        return (repeat try next((each Column).self))
    }

    /// Decodes a single-column row.
    @inlinable
    public func decode<Column: PostgresDecodable>(_: Column.Type) throws(PostgresError) -> Column {
        try requireColumnCount(1)
        return try decode(column: 0, as: Column.self)
    }

    /// Decodes the column the server named `name` (exact match).
    public func decode<Column: PostgresDecodable>(_ name: String, as _: Column.Type) throws(PostgresError) -> Column {
        guard let index = result.columnIndex(named: name) else {
            var error = PostgresError(.decoding)
            error.columnName = name
            error.swiftType = "\(Column.self)"
            error.reason = "no such column"
            throw error
        }
        return try decode(column: index, as: Column.self)
    }

    /// Decodes the column at `index` (0-based). Inlinable, so that callers in other modules get
    /// it specialized for the concrete column type instead of looking up generic metadata for
    /// every value; the error paths stay out of line.
    @inlinable
    public func decode<Column: PostgresDecodable>(column index: Int, as _: Column.Type) throws(PostgresError) -> Column {
        guard index >= 0 && index < result.columnCount else {
            throw Self.noSuchColumn(index: index, swiftType: Column.self)
        }
        let type = result.columnType(index)
        do throws(PostgresDecodingFailure) {
            guard let bytes = result.value(row: row, column: index) else {
                guard let null = Column.postgresNull else { throw .unexpectedNull }
                return null
            }
            return try Column(postgresBinary: bytes, type: type)
        } catch {
            throw decodingError(error, column: index, type: type, swiftType: Column.self)
        }
    }

    @usableFromInline
    static func noSuchColumn(index: Int, swiftType: Any.Type) -> PostgresError {
        var error = PostgresError(.decoding)
        error.columnIndex = index
        error.swiftType = String(describing: swiftType)
        error.reason = "no such column"
        return error
    }

    @usableFromInline
    func decodingError(_ failure: PostgresDecodingFailure, column index: Int, type: PostgresDataType, swiftType: Any.Type) -> PostgresError {
        var error = PostgresError(.decoding)
        error.columnName = result.columnName(index)
        error.columnIndex = index
        error.swiftType = String(describing: swiftType)
        error.postgresType = type
        error.reason = failure.reason
        return error
    }

    /// Whether the column at `index` is NULL.
    public func isNull(column index: Int) -> Bool {
        result.value(row: row, column: index) == nil
    }

    @usableFromInline
    func requireColumnCount(_ expected: Int) throws(PostgresError) {
        guard result.columnCount == expected else {
            var error = PostgresError(.decoding)
            error.reason = "decoding \(expected) column\(expected == 1 ? "" : "s") from a row of \(result.columnCount)"
            throw error
        }
    }
}
