import FeeReconCore
import Postgres

/// JSON text for the `jsonb` columns every payment writes (headers, event and exception details,
/// audit details), without a `JSONEncoder` per value: bound as `jsonb` one value at a time, or
/// passed as `text[]` and cast to `jsonb` in SQL many rows at a time. jsonb stores the parsed
/// value, so the result is the same as `PostgresJSON`'s.
enum JSONText {
    /// `{"key":"value",…}` bound as `jsonb`.
    static func jsonb(_ fields: [String: String]) -> PostgresRawJSON {
        var out: [UInt8] = []
        JSONWriting.appendObject(fields, to: &out)
        return PostgresRawJSON(bytes: out)
    }

    /// `[["name","value"],…]` bound as `jsonb`.
    static func jsonb(rows: [[String]]) -> PostgresRawJSON {
        PostgresRawJSON(bytes: arrayBytes(of: rows))
    }

    /// `[["name","value"],…]`.
    static func array(of rows: [[String]]) -> String {
        String(decoding: arrayBytes(of: rows), as: UTF8.self)
    }

    private static func arrayBytes(of rows: [[String]]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, row) in rows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            for (j, item) in row.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriting.appendString(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// `{"key":"value",…}` with the keys sorted.
    static func object(_ fields: [String: String]) -> String {
        jsonb(fields).text
    }
}
