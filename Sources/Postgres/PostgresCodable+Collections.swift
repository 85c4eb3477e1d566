import struct Foundation.Data
import struct Foundation.Date
import class Foundation.JSONDecoder
import class Foundation.JSONEncoder
import struct Foundation.UUID

// MARK: - Arrays

/// A scalar that can be an element of a one-dimensional PostgreSQL array parameter or column,
/// e.g. `WHERE id = ANY(\(ids))`. `UInt8` is the exception: `[UInt8]` is `bytea`.
public protocol PostgresArrayElement: Sendable {
    /// The array type OID, e.g. `int8[]` for `Int64`.
    static var postgresArrayType: PostgresDataType { get }

    static func encodeArray(_ elements: [Self], into buffer: inout [UInt8]) throws
    static func encodeArrayText(_ elements: [Self], into buffer: inout [UInt8]) throws
    static func decodeArray(
        from bytes: UnsafeRawBufferPointer, type: PostgresDataType
    ) throws(PostgresDecodingFailure) -> [Self]
}

/// Array type OIDs a one-dimensional array column may have.
private let knownArrayTypes: Set<PostgresDataType> = [
    .boolArray, .byteaArray, .int2Array, .int4Array, .int8Array, .textArray, .varcharArray,
    .timestamptzArray, .uuidArray, .jsonbArray,
]

extension PostgresArrayElement where Self: PostgresEncodable & PostgresDecodable {
    /// Binary array format: dimensions, has-null flag, element OID, then length-prefixed elements.
    public static func encodeArray(_ elements: [Self], into buffer: inout [UInt8]) throws {
        buffer.appendBigEndian(Int32(elements.isEmpty ? 0 : 1))
        buffer.appendBigEndian(Int32(0))
        buffer.appendBigEndian(postgresType.rawValue)
        guard !elements.isEmpty else { return }
        guard let count = Int32(exactly: elements.count) else {
            throw PostgresError.encodingFailed(reason: "array too long")
        }
        buffer.appendBigEndian(count)
        buffer.appendBigEndian(Int32(1))
        for element in elements {
            let lengthAt = buffer.count
            buffer.appendBigEndian(Int32(0))
            try element.encode(into: &buffer)
            let length = UInt32(buffer.count - lengthAt - 4)
            withUnsafeBytes(of: length.bigEndian) { bytes in
                for i in 0..<4 { buffer[lengthAt + i] = bytes[i] }
            }
        }
    }

    /// Text array format: `{"a","b"}`, every element quoted.
    public static func encodeArrayText(_ elements: [Self], into buffer: inout [UInt8]) throws {
        buffer.append(UInt8(ascii: "{"))
        var element = [UInt8]()
        for (i, value) in elements.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: ",")) }
            element.removeAll(keepingCapacity: true)
            try value.encodeText(into: &element)
            buffer.append(UInt8(ascii: "\""))
            for byte in element {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { buffer.append(UInt8(ascii: "\\")) }
                buffer.append(byte)
            }
            buffer.append(UInt8(ascii: "\""))
        }
        buffer.append(UInt8(ascii: "}"))
    }

    public static func decodeArray(
        from bytes: UnsafeRawBufferPointer, type: PostgresDataType
    ) throws(PostgresDecodingFailure) -> [Self] {
        guard knownArrayTypes.contains(type) else { throw .typeMismatch }
        guard bytes.count >= 12 else { throw .invalidValue("truncated array header") }
        let dimensions = bytes.readBigEndian(Int32.self, at: 0)
        let elementType = PostgresDataType(bytes.readBigEndian(UInt32.self, at: 8))
        switch dimensions {
        case 0:
            return []
        case 1:
            break
        default:
            throw .invalidValue("\(dimensions)-dimensional array")
        }
        guard bytes.count >= 20 else { throw .invalidValue("truncated array header") }
        let count = Int(bytes.readBigEndian(Int32.self, at: 12))
        var offset = 20
        var result = [Self]()
        result.reserveCapacity(count)
        for _ in 0..<count {
            guard offset + 4 <= bytes.count else { throw .invalidValue("truncated array") }
            let length = Int(bytes.readBigEndian(Int32.self, at: offset))
            offset += 4
            guard length >= 0 else { throw .invalidValue("NULL array element") }
            guard offset + length <= bytes.count else { throw .invalidValue("truncated array") }
            let element = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
            result.append(try Self(postgresBinary: element, type: elementType))
            offset += length
        }
        return result
    }
}

extension Int64: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .int8Array }
}

extension Int: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .int8Array }
}

extension Int32: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .int4Array }
}

extension Int16: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .int2Array }
}

extension Bool: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .boolArray }
}

extension String: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .textArray }
}

extension Date: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .timestamptzArray }
}

extension UUID: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .uuidArray }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresDataType { Element.postgresArrayType }

    public func encode(into buffer: inout [UInt8]) throws {
        try Element.encodeArray(self, into: &buffer)
    }

    public func encodeText(into buffer: inout [UInt8]) throws {
        try Element.encodeArrayText(self, into: &buffer)
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        self = try Element.decodeArray(from: bytes, type: type)
    }
}

// MARK: - bytea

/// `[UInt8]` is `bytea`, not an array of numbers.
extension UInt8: PostgresArrayElement {
    public static var postgresArrayType: PostgresDataType { .bytea }

    public static func encodeArray(_ elements: [UInt8], into buffer: inout [UInt8]) {
        buffer.append(contentsOf: elements)
    }

    /// bytea's hex input format, `\x0a1b…`.
    public static func encodeArrayText(_ elements: [UInt8], into buffer: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        buffer.reserveCapacity(buffer.count + 2 + elements.count * 2)
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(UInt8(ascii: "x"))
        for byte in elements {
            buffer.append(digits[Int(byte >> 4)])
            buffer.append(digits[Int(byte & 0x0F)])
        }
    }

    public static func decodeArray(
        from bytes: UnsafeRawBufferPointer, type: PostgresDataType
    ) throws(PostgresDecodingFailure) -> [UInt8] {
        guard type == .bytea else { throw .typeMismatch }
        return [UInt8](bytes)
    }
}

/// `[[UInt8]]` is `bytea[]`, e.g. many bodies for one `INSERT … SELECT FROM unnest(…)`.
extension Array: PostgresArrayElement where Element == UInt8 {
    public static var postgresArrayType: PostgresDataType { .byteaArray }
}

// MARK: - JSON

/// A `Codable` value stored as `jsonb` (encoded with `JSONEncoder`, decoded from json or jsonb).
public struct PostgresJSON<Value: Codable & Sendable>: Sendable {
    public var value: Value

    public init(_ value: Value) {
        self.value = value
    }
}

extension PostgresJSON: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .jsonb }

    public func encode(into buffer: inout [UInt8]) throws {
        buffer.append(1)
        try encodeText(into: &buffer)
    }

    public func encodeText(into buffer: inout [UInt8]) throws {
        do {
            buffer.append(contentsOf: try JSONEncoder().encode(value))
        } catch {
            throw PostgresError.encodingFailed(reason: "JSONEncoder failed for \(Value.self)")
        }
    }

    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        let text = try PostgresRawJSON(postgresBinary: bytes, type: type)
        do {
            self.value = try JSONDecoder().decode(Value.self, from: Data(text.bytes))
        } catch {
            throw .invalidValue("JSON does not decode as \(Value.self)")
        }
    }
}

extension PostgresJSON: Equatable where Value: Equatable {}
extension PostgresJSON: Hashable where Value: Hashable {}

/// JSON text as raw UTF-8 bytes, bound as `jsonb`; decodes json or jsonb columns without parsing.
public struct PostgresRawJSON: Sendable, Hashable, PostgresEncodable, PostgresDecodable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public static var postgresType: PostgresDataType { .jsonb }

    public func encode(into buffer: inout [UInt8]) {
        buffer.append(1)
        buffer.append(contentsOf: bytes)
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: bytes)
    }

    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        switch type {
        case .jsonb:
            guard let version = bytes.first else { throw .invalidValue("empty jsonb") }
            guard version == 1 else { throw .invalidValue("jsonb format version \(version)") }
            self.bytes = [UInt8](UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
        case .json:
            self.bytes = [UInt8](bytes)
        default:
            throw .typeMismatch
        }
    }
}
