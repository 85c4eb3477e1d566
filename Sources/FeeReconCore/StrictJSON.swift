/// A strict pre-check of JSON bodies (the portal's and the service's API) before they are
/// decoded. Foundation's decoder turns `150000.0` or `1.5e5` into an integer and keeps the first of two duplicate keys; on this
/// wire amounts are integers only and a body with a doubled key is ambiguous, so both are refused
/// here. Also refuses invalid UTF-8, trailing garbage and nesting deeper than 16.
public enum StrictJSON {
    public struct Violation: Error, Hashable, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public static func validate(_ bytes: some Collection<UInt8>) throws(Violation) {
        let input = Array(bytes)
        guard String(validating: input, as: UTF8.self) != nil else { throw Violation(reason: "body is not valid UTF-8") }
        var scanner = Scanner(bytes: input)
        scanner.skipWhitespace()
        try scanner.value(depth: 0)
        scanner.skipWhitespace()
        guard scanner.index == input.count else { throw Violation(reason: "unexpected content after the JSON value") }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { index += 1 }
        }

        mutating func expect(_ literal: String) throws(Violation) {
            for byte in literal.utf8 {
                guard current == byte else { throw Violation(reason: "malformed JSON literal") }
                index += 1
            }
        }

        mutating func value(depth: Int) throws(Violation) {
            guard depth < 16 else { throw Violation(reason: "JSON nested too deeply") }
            switch current {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try expect("true")
            case UInt8(ascii: "f"): try expect("false")
            case UInt8(ascii: "n"): try expect("null")
            case let c? where c == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c): try integer()
            default: throw Violation(reason: "malformed JSON value")
            }
        }

        mutating func object(depth: Int) throws(Violation) {
            index += 1
            var keys = Set<[UInt8]>()
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw Violation(reason: "malformed JSON object key") }
                let key = try string()
                guard keys.insert(key).inserted else {
                    throw Violation(reason: "duplicate key \(String(decoding: key, as: UTF8.self)) in JSON object")
                }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw Violation(reason: "malformed JSON object") }
                index += 1
                skipWhitespace()
                try value(depth: depth + 1)
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return
                default: throw Violation(reason: "malformed JSON object")
                }
            }
        }

        mutating func array(depth: Int) throws(Violation) {
            index += 1
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try value(depth: depth + 1)
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return
                default: throw Violation(reason: "malformed JSON array")
                }
            }
        }

        /// Returns the raw (still escaped) bytes of the string, which is enough to compare keys.
        mutating func string() throws(Violation) -> [UInt8] {
            index += 1
            let start = index
            while let c = current {
                switch c {
                case UInt8(ascii: "\""):
                    let raw = Array(bytes[start..<index])
                    index += 1
                    return raw
                case UInt8(ascii: "\\"):
                    index += 2
                case let c where c < 0x20:
                    throw Violation(reason: "control character in JSON string")
                default:
                    index += 1
                }
            }
            throw Violation(reason: "unterminated JSON string")
        }

        mutating func integer() throws(Violation) {
            if current == UInt8(ascii: "-") { index += 1 }
            let start = index
            while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { index += 1 }
            guard index > start else { throw Violation(reason: "malformed JSON number") }
            guard !(bytes[start] == UInt8(ascii: "0") && index - start > 1) else {
                throw Violation(reason: "JSON number with a leading zero")
            }
            if let c = current, c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                throw Violation(reason: "numbers must be integers (amounts are whole đồng)")
            }
        }
    }
}
