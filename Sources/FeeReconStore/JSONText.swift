/// Minimal JSON text for the `jsonb` columns written many rows at a time (headers, event
/// details), passed as `text[]` and cast to `jsonb` in SQL. jsonb stores the parsed value, so the
/// result is the same as `PostgresJSON`'s without a `JSONEncoder` per row.
enum JSONText {
    /// `[["name","value"],…]`.
    static func array(of rows: [[String]]) -> String {
        var out = "["
        for (i, row) in rows.enumerated() {
            if i > 0 { out += "," }
            out += "["
            for (j, item) in row.enumerated() {
                if j > 0 { out += "," }
                appendString(item, to: &out)
            }
            out += "]"
        }
        return out + "]"
    }

    /// `{"key":"value",…}` with the keys sorted.
    static func object(_ fields: [String: String]) -> String {
        var out = "{"
        for (i, key) in fields.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            appendString(fields[key]!, to: &out)
        }
        return out + "}"
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        var plain = true
        for byte in text.utf8 where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            plain = false
            break
        }
        if plain {
            out += text
        } else {
            let hex = Array("0123456789abcdef".unicodeScalars)
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    out += "\\u00"
                    out.unicodeScalars.append(hex[Int(scalar.value >> 4)])
                    out.unicodeScalars.append(hex[Int(scalar.value & 0xF)])
                default:
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
