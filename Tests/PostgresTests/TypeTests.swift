import Foundation
import Postgres
import TestSupport
import Testing

/// One database for the type tests, created on first use and left to the throwaway cluster.
private let typesDatabase = Task { () throws -> TestDatabase in
    let database = try await TestDatabase.create(maximumConnections: 4)
    try await database.client.execute("""
        CREATE TABLE round_trip (
            id bigserial PRIMARY KEY,
            i2 smallint, i4 integer, i8 bigint, b boolean, t text, vc varchar(200),
            ts timestamptz, u uuid, bin bytea, j jsonb,
            i8s bigint[], i4s integer[], i2s smallint[], ts_s text[], us uuid[], bs boolean[], tss timestamptz[]
        )
        """)
    return database
}

private struct Receipt: Codable, Equatable, Sendable {
    var code: String
    var amount: Int64
    var lines: [String]
    var paid: Bool?
}

private enum Status: String, PostgresCodable, Equatable {
    case pending, succeeded
}

/// A date that survives microsecond rounding exactly.
private func date(micros: Int64) -> Date {
    Date(timeIntervalSinceReferenceDate: Double(micros) / 1_000_000)
}

struct RoundTripCase: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let run: @Sendable (PostgresClient) async throws -> Void

    init<Value: PostgresCodable & Equatable>(_ name: String, _ value: Value, column: String) {
        self.testDescription = name
        self.run = { client in
            let echoed = try await client.query("SELECT \(value) AS v")
            #expect(try echoed[0].decode(Value.self) == value, "SELECT $1 of \(name)")

            let stored = try await client.query(
                "INSERT INTO round_trip (\(identifier: column)) VALUES (\(value)) RETURNING \(identifier: column)")
            #expect(try stored[0].decode(column, as: Value.self) == value, "column \(column) of \(name)")
        }
    }
}

@Suite("Type round trips")
struct TypeTests {
    static let cases: [RoundTripCase] = [
        .init("Int16.max", Int16.max, column: "i2"),
        .init("Int16.min", Int16.min, column: "i2"),
        .init("Int16? nil", Int16?.none, column: "i2"),
        .init("Int32.max", Int32.max, column: "i4"),
        .init("Int32.min", Int32.min, column: "i4"),
        .init("Int32? nil", Int32?.none, column: "i4"),
        .init("Int64.max", Int64.max, column: "i8"),
        .init("Int64.min", Int64.min, column: "i8"),
        .init("Int64 zero", Int64(0), column: "i8"),
        .init("Int64? nil", Int64?.none, column: "i8"),
        .init("Int.max", Int.max, column: "i8"),
        .init("Int -1", -1, column: "i8"),
        .init("Bool true", true, column: "b"),
        .init("Bool false", false, column: "b"),
        .init("Bool? nil", Bool?.none, column: "b"),
        .init("Vietnamese text", "Nguyễn Văn Ánh, Sở Tư pháp", column: "t"),
        .init("empty string", "", column: "t"),
        .init("control characters", "tab\there\nnew line\r\\backslash \"quoted\" 'single'", column: "t"),
        .init("emoji", "Đã thanh toán ✅ 🇻🇳", column: "t"),
        .init("String? nil", String?.none, column: "t"),
        .init("varchar column", "Phường Bến Nghé", column: "vc"),
        .init("timestamptz now-ish", date(micros: 763_000_123_456_789), column: "ts"),
        .init("timestamptz before 2000", date(micros: -1_000_000_000_000_001), column: "ts"),
        .init("timestamptz epoch", Date(timeIntervalSince1970: 0), column: "ts"),
        .init("Date? nil", Date?.none, column: "ts"),
        .init("UUID", UUID(uuidString: "0b6a2f0e-2b0c-4c5e-9f43-1d2a3b4c5d6e")!, column: "u"),
        .init("UUID? nil", UUID?.none, column: "u"),
        .init("bytea", [UInt8]([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]), column: "bin"),
        .init("empty bytea", [UInt8](), column: "bin"),
        .init("large bytea", [UInt8]((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }), column: "bin"),
        .init("bytea? nil", [UInt8]?.none, column: "bin"),
        .init(
            "jsonb", PostgresJSON(Receipt(code: "HS-0001", amount: 150_000, lines: ["Lệ phí", "Phí"], paid: nil)),
            column: "j"),
        .init("jsonb? nil", PostgresJSON<Receipt>?.none, column: "j"),
        .init(
            "jsonb string object", PostgresJSON(["reason": "quote \" backslash \\ tab\t nl\n \u{1}", "Đơn vị": "Sở Tư pháp ✅", "": ""]),
            column: "j"),
        .init("jsonb empty object", PostgresJSON([String: String]()), column: "j"),
        .init("[Int64]", [Int64.min, 0, Int64.max], column: "i8s"),
        .init("empty [Int64]", [Int64](), column: "i8s"),
        .init("[Int32]", [Int32(1), 2, 3], column: "i4s"),
        .init("[Int16]", [Int16(-1), 7], column: "i2s"),
        .init("[String]", ["a,b", "\"q\"", "back\\slash", "Sở Tư pháp", "", "NULL"], column: "ts_s"),
        .init("[UUID]", [UUID(), UUID()], column: "us"),
        .init("[Bool]", [true, false], column: "bs"),
        .init("[Date]", [date(micros: 0), date(micros: 1)], column: "tss"),
        .init("[Int64]? nil", [Int64]?.none, column: "i8s"),
        .init("RawRepresentable enum", Status.succeeded, column: "t"),
    ]

    @Test(arguments: cases)
    func roundTrip(_ testCase: RoundTripCase) async throws {
        try await testCase.run(try await typesDatabase.value.client)
    }

    @Test func injectionAttemptIsStoredLiterally() async throws {
        let client = try await typesDatabase.value.client
        try await client.execute("CREATE TABLE IF NOT EXISTS victims (name text)")
        let hostile = "'; DROP TABLE victims; --"
        try await client.execute("INSERT INTO victims (name) VALUES (\(hostile))")
        let names = try await client.query("SELECT name FROM victims WHERE name = \(hostile)").decode(String.self)
        #expect(names == [hostile])
        let exists = try await client.query("SELECT to_regclass('victims') IS NOT NULL").first!.decode(Bool.self)
        #expect(exists)
    }

    @Test func rawJSONKeepsBytes() async throws {
        let client = try await typesDatabase.value.client
        let raw = PostgresRawJSON(#"{"ma":"HS-1","so_tien":150000}"#)
        let row = try await client.query("SELECT \(raw) AS j, \(raw.text)::json AS plain")[0]
        let (jsonb, json) = try row.decode((PostgresRawJSON, PostgresRawJSON).self)
        #expect(try JSONSerialization.jsonObject(with: Data(jsonb.bytes)) as? NSDictionary
            == ["ma": "HS-1", "so_tien": 150000] as NSDictionary)
        #expect(json == raw)
    }

    @Test func datesRoundToTheMicrosecond() async throws {
        let client = try await typesDatabase.value.client
        let precise = Date(timeIntervalSince1970: 1_700_000_000.123456789)
        let stored = try await client.query("SELECT \(precise)")[0].decode(Date.self)
        #expect(abs(stored.timeIntervalSince(precise)) < 0.000_001)
        let text = try await client.query(
            "SELECT to_char(\(precise) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")[0].decode(String.self)
        #expect(text == "2023-11-14 22:13:20.123457")
    }

    /// The text format (COPY, text arrays) writes four-digit years; others are refused, not a crash.
    @Test func textTimestampsOutsideFourDigitYearsAreRefused() throws {
        var buffer: [UInt8] = []
        try Date(timeIntervalSince1970: 253_402_300_799).encodeText(into: &buffer)  // 9999-12-31 23:59:59
        #expect(String(decoding: buffer, as: UTF8.self) == "9999-12-31 23:59:59.000000+00")
        for date in [Date(timeIntervalSince1970: 4e11), Date(timeIntervalSince1970: -62_200_000_000)] {
            var out: [UInt8] = []
            #expect(throws: PostgresError.self) { try date.encodeText(into: &out) }
        }
    }

    @Test func infiniteTimestampsMapToDistantDates() async throws {
        let client = try await typesDatabase.value.client
        let (future, past) = try await client.query("SELECT 'infinity'::timestamptz, '-infinity'::timestamptz")[0]
            .decode((Date, Date).self)
        #expect(future == .distantFuture)
        #expect(past == .distantPast)
    }

    @Test func tupleAndNamedDecoding() async throws {
        let client = try await typesDatabase.value.client
        let rows = try await client.query("""
            SELECT i::bigint AS id, 'dossier-' || i AS code, CASE WHEN i % 2 = 0 THEN NULL ELSE i * 1000 END AS amount
            FROM generate_series(1, 4) AS i ORDER BY i
            """)
        #expect(rows.count == 4)
        #expect(rows.columns.map(\.name) == ["id", "code", "amount"])
        let decoded = try rows.decode((Int64, String, Int64?).self)
        #expect(decoded.map(\.0) == [1, 2, 3, 4])
        #expect(decoded.map(\.1) == ["dossier-1", "dossier-2", "dossier-3", "dossier-4"])
        #expect(decoded.map(\.2) == [1000, nil, 3000, nil])
        #expect(try rows[2].decode("code", as: String.self) == "dossier-3")
        #expect(try rows[1].decode("amount", as: Int64?.self) == nil)
        #expect(rows[1].isNull(column: 2))
    }

    @Test func smallerIntegersWidenToInt64() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT 7::int2 AS a, 70000::int4 AS b, 5::int2 AS c")[0]
        let (a, b, c) = try row.decode((Int64, Int64, Int32).self)
        #expect(a == 7 && b == 70_000 && c == 5)
    }

    @Test func narrowingIsRefusedNamingTheColumn() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT 1::int8 AS amount_dong")[0]
        let error = try #require(throws: PostgresError.self) { try row.decode(Int32.self) }
        #expect(error.code == .decoding)
        #expect(error.columnName == "amount_dong")
        #expect(error.postgresType == .int8)
        #expect(error.swiftType == "Int32")
        #expect(error.description.contains("amount_dong"))
        #expect(error.description.contains("int8"))
        #expect(error.description.contains("Int32"))
    }

    @Test func typeMismatchNamesColumnAndTypes() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT 'HS-1'::text AS code, 42::int8 AS amount")[0]
        let error = try #require(throws: PostgresError.self) { try row.decode((String, String).self) }
        #expect(error.columnName == "amount")
        #expect(error.columnIndex == 1)
        #expect(error.description == "PostgresError(decoding, column: amount, columnIndex: 1, swiftType: String, postgresType: int8, reason: type mismatch)")
    }

    @Test func nullIntoNonOptionalIsAnErrorNamingTheColumn() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT NULL::text AS citizen_name")[0]
        let error = try #require(throws: PostgresError.self) { try row.decode("citizen_name", as: String.self) }
        #expect(error.code == .decoding)
        #expect(error.columnName == "citizen_name")
        #expect(error.reason == "unexpected NULL")
        #expect(try row.decode("citizen_name", as: String?.self) == nil)
    }

    @Test func wrongColumnCountAndUnknownNameAreErrors() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT 1::int8 AS a, 2::int8 AS b")[0]
        #expect(throws: PostgresError.self) { try row.decode(Int64.self) }
        #expect(throws: PostgresError.self) { try row.decode((Int64, Int64, Int64).self) }
        let error = try #require(throws: PostgresError.self) { try row.decode("c", as: Int64.self) }
        #expect(error.columnName == "c")
    }

    @Test func invalidRawValueIsADecodingError() async throws {
        let client = try await typesDatabase.value.client
        let row = try await client.query("SELECT 'refunded'::text AS status")[0]
        let error = try #require(throws: PostgresError.self) { try row.decode(Status.self) }
        #expect(error.code == .decoding)
        #expect(!error.description.contains("refunded"))
    }

    @Test func arraysWorkWithAny() async throws {
        let client = try await typesDatabase.value.client
        let ids: [Int64] = [2, 4, 6]
        let found = try await client.query(
            "SELECT i::int8 FROM generate_series(1, 10) AS i WHERE i = ANY(\(ids)) ORDER BY i").decode(Int64.self)
        #expect(found == ids)
        let codes = ["HS-1", "HS-3"]
        let matched = try await client.query(
            "SELECT count(*) FROM unnest(ARRAY['HS-1','HS-2','HS-3']) AS c WHERE c = ANY(\(codes))")[0].decode(Int64.self)
        #expect(matched == 2)
    }

    @Test func byteaArraysRoundTripThroughUnnest() async throws {
        let client = try await typesDatabase.value.client
        let bodies: [[UInt8]] = [[0x7B, 0x00, 0xFF], [], Array("{\"MaLoi\":\"00\"}".utf8)]
        let rows = try await client.query(
            "SELECT b, n::int8 FROM unnest(\(bodies)) WITH ORDINALITY AS x(b, n) ORDER BY n")
        #expect(try rows.map { try $0.decode(([UInt8], Int64).self).0 } == bodies)
        let echoed = try await client.query("SELECT \(bodies)")[0].decode([[UInt8]].self)
        #expect(echoed == bodies)
    }
}
