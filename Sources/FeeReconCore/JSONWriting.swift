/// JSON text written by hand where a `JSONEncoder` per value costs too much: the batched jsonb
/// rows of the store, the "dossier paid" payloads, the gateway's create requests. Written as
/// `JSONEncoder` writes it (`.sortedKeys`, `.withoutEscapingSlashes`), so a hand-written encoder
/// can be tested byte for byte against the `Codable` one. Strings are escaped here and nowhere
/// else in the service: string-keyed jsonb values are bound as `PostgresRawJSON` made by
/// `JSONText`, not through `PostgresJSON`'s `JSONEncoder`.
public enum JSONWriting {
    /// `{"key":"value",…}` with keys in sorted order.
    public static func appendObject(_ object: [String: String], to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        for (index, key) in object.keys.sorted().enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            appendString(key, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            appendString(object[key]!, to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    /// A JSON string literal, escaped as `JSONEncoder` escapes it (with `.withoutEscapingSlashes`):
    /// quote and backslash, `\b \t \n \f \r`, other control characters as `\u00xx`, everything
    /// else as its UTF-8.
    public static func appendString(_ text: String, to buffer: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        buffer.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(byte)
            case 0x08: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0..<0x20:
                buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                hex.withUTF8Buffer { digits in
                    buffer.append(digits[Int(byte >> 4)])
                    buffer.append(digits[Int(byte & 0x0F)])
                }
            default:
                buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }
}


/// Writes one JSON value by hand, putting the commas where they go: for encoders whose output
/// must equal `JSONEncoder`'s (keys given in sorted order, absent optionals left out) without its
/// cost.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's name; it must need no escaping (the wire's field names are ASCII letters).
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        JSONWriting.appendString(value, to: &bytes)
        needsComma = true
    }

    public mutating func integer(_ value: Int64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    public mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        string(value)
    }

    /// Left out when nil, as `JSONEncoder` leaves out an absent optional.
    public mutating func field(_ name: StaticString, _ value: String?) {
        if let value { field(name, value) }
    }

    public mutating func field(_ name: StaticString, _ value: Int64) {
        key(name)
        integer(value)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }
}
