/// A Swift value that can be bound as a statement parameter (binary format) or written as a COPY
/// field (text format).
public protocol PostgresEncodable: Sendable {
    /// The parameter type sent with the value, so the server never has to guess.
    static var postgresType: PostgresDataType { get }

    /// Appends the value in PostgreSQL's binary format. Not called when `isPostgresNull`.
    func encode(into buffer: inout [UInt8]) throws

    /// Appends the value in PostgreSQL's text input format, unescaped (COPY escapes it).
    func encodeText(into buffer: inout [UInt8]) throws

    /// Whether the value is SQL NULL; only `Optional.none` is.
    var isPostgresNull: Bool { get }
}

extension PostgresEncodable {
    public var isPostgresNull: Bool { false }
}

/// A Swift value that can be decoded from a binary-format result column.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value. `type` is the column's type OID; conformances reject types they
    /// cannot represent losslessly.
    init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure)

    /// The value SQL NULL decodes to, or nil when NULL is an error (everything but `Optional`).
    static var postgresNull: Self? { get }
}

extension PostgresDecodable {
    @inlinable
    public static var postgresNull: Self? { nil }
}

/// Both directions.
public typealias PostgresCodable = PostgresEncodable & PostgresDecodable

/// Why one value failed to decode. The row turns it into a `PostgresError` naming the column.
public struct PostgresDecodingFailure: Error, Sendable, CustomStringConvertible {
    /// What was wrong, never including the value itself.
    public let reason: String

    public init(reason: String) {
        self.reason = reason
    }

    /// The column's type cannot be decoded into the requested Swift type without loss.
    public static let typeMismatch = PostgresDecodingFailure(reason: "type mismatch")

    /// The column held NULL but the Swift type is not optional.
    public static let unexpectedNull = PostgresDecodingFailure(reason: "unexpected NULL")

    public static func invalidLength(_ length: Int, expected: Int) -> Self {
        Self(reason: "\(length) bytes where \(expected) were expected")
    }

    public static func invalidValue(_ what: String) -> Self {
        Self(reason: what)
    }

    public var description: String { reason }
}

// MARK: - Byte helpers

extension Array where Element == UInt8 {
    @inlinable
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    @inlinable
    mutating func appendDecimal<T: BinaryInteger>(_ value: T) {
        append(contentsOf: String(value).utf8)
    }
}

extension UnsafeRawBufferPointer {
    @inlinable
    func readBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int = 0) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inlinable
    func requireLength(_ expected: Int) throws(PostgresDecodingFailure) {
        guard count == expected else { throw .invalidLength(count, expected: expected) }
    }
}

// MARK: - Integers

extension Int64: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int8 }

    public func encode(into buffer: inout [UInt8]) {
        buffer.appendBigEndian(self)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.appendDecimal(self)
    }

    /// Accepts int8, and int4 / int2 widened.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        switch type {
        case .int8:
            try bytes.requireLength(8)
            self = bytes.readBigEndian(Int64.self)
        case .int4:
            try bytes.requireLength(4)
            self = Int64(bytes.readBigEndian(Int32.self))
        case .int2:
            try bytes.requireLength(2)
            self = Int64(bytes.readBigEndian(Int16.self))
        default:
            throw .typeMismatch
        }
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int8 }

    public func encode(into buffer: inout [UInt8]) {
        buffer.appendBigEndian(Int64(self))
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.appendDecimal(self)
    }

    /// Accepts int8, and int4 / int2 widened.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        let wide = try Int64(postgresBinary: bytes, type: type)
        guard let value = Int(exactly: wide) else { throw .invalidValue("out of range for Int") }
        self = value
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int4 }

    public func encode(into buffer: inout [UInt8]) {
        buffer.appendBigEndian(self)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.appendDecimal(self)
    }

    /// Accepts int4, and int2 widened; int8 is refused rather than narrowed.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        switch type {
        case .int4:
            try bytes.requireLength(4)
            self = bytes.readBigEndian(Int32.self)
        case .int2:
            try bytes.requireLength(2)
            self = Int32(bytes.readBigEndian(Int16.self))
        default:
            throw .typeMismatch
        }
    }
}

extension Int16: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .int2 }

    public func encode(into buffer: inout [UInt8]) {
        buffer.appendBigEndian(self)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.appendDecimal(self)
    }

    /// Accepts int2 only.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        guard type == .int2 else { throw .typeMismatch }
        try bytes.requireLength(2)
        self = bytes.readBigEndian(Int16.self)
    }
}

// MARK: - Bool

extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .bool }

    public func encode(into buffer: inout [UInt8]) {
        buffer.append(self ? 1 : 0)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.append(self ? UInt8(ascii: "t") : UInt8(ascii: "f"))
    }

    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        guard type == .bool else { throw .typeMismatch }
        try bytes.requireLength(1)
        switch bytes[0] {
        case 0: self = false
        case 1: self = true
        default: throw .invalidValue("not a boolean")
        }
    }
}

// MARK: - String

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .text }

    public func encode(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: utf8)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: utf8)
    }

    /// Accepts text, varchar, bpchar, name and untyped literals.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        switch type {
        case .text, .varchar, .bpchar, .name, .unknown:
            self = String(decoding: bytes, as: UTF8.self)
        default:
            throw .typeMismatch
        }
    }
}

// MARK: - Optional

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresDataType { Wrapped.postgresType }

    public func encode(into buffer: inout [UInt8]) throws {
        if case .some(let value) = self { try value.encode(into: &buffer) }
    }

    public func encodeText(into buffer: inout [UInt8]) throws {
        if case .some(let value) = self { try value.encodeText(into: &buffer) }
    }

    public var isPostgresNull: Bool {
        switch self {
        case .none: true
        case .some(let value): value.isPostgresNull
        }
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    @inlinable
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        self = .some(try Wrapped(postgresBinary: bytes, type: type))
    }

    @inlinable
    public static var postgresNull: Self? { .some(.none) }
}

// MARK: - RawRepresentable

extension PostgresEncodable where Self: RawRepresentable, RawValue: PostgresEncodable {
    public static var postgresType: PostgresDataType { RawValue.postgresType }

    public func encode(into buffer: inout [UInt8]) throws {
        try rawValue.encode(into: &buffer)
    }

    public func encodeText(into buffer: inout [UInt8]) throws {
        try rawValue.encodeText(into: &buffer)
    }
}

extension PostgresDecodable where Self: RawRepresentable, RawValue: PostgresDecodable {
    /// Decodes the raw value, then refuses values `init?(rawValue:)` rejects.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        let raw = try RawValue(postgresBinary: bytes, type: type)
        guard let value = Self(rawValue: raw) else {
            throw .invalidValue("not a valid \(Self.self)")
        }
        self = value
    }
}
