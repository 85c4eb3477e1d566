import Postgres

/// Minimal JSON text for the `jsonb` columns written many rows at a time (headers, event
/// details), passed as `text[]` and cast to `jsonb` in SQL. jsonb stores the parsed value, so the
/// result is the same as `PostgresJSON`'s without a `JSONEncoder` per row.
enum JSONText {
    /// `[["name","value"],…]`.
    static func array(of rows: [[String]]) -> String {
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
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"key":"value",…}` with the keys sorted.
    static func object(_ fields: [String: String]) -> String {
        var out: [UInt8] = []
        JSONWriting.appendObject(fields, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
