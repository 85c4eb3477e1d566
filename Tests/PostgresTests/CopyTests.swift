import Cryptography
import Foundation
import Postgres
import TestSupport
import Testing

@Suite("COPY FROM STDIN")
struct CopyTests {
    static let awkwardNames = [
        "Nguyễn Văn Ánh, Sở Tư pháp", "tab\there", "line\nbreak", "carriage\rreturn", #"back\slash"#,
        #"\N"#, "", "\\.", "quote \" and 'single'",
    ]

    @Test func copiesOneHundredThousandRowsExactly() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("""
                CREATE TABLE payments (
                    id bigint PRIMARY KEY, reference text NOT NULL, amount bigint NOT NULL,
                    note text, paid_at timestamptz, settled boolean, trace uuid)
                """)
            let count = 100_000
            let base = Date(timeIntervalSinceReferenceDate: 789_000_000)
            var expectedSum: Int64 = 0
            var digestInput = [UInt8]()
            for i in 0..<count {
                let name = Self.awkwardNames[i % Self.awkwardNames.count]
                let note: String? = i % 7 == 0 ? nil : name + " #\(i)"
                expectedSum += Int64(i) * 1000
                digestInput += Array("\(i)|\(note ?? "<null>");".utf8)
            }
            let trace = UUID()

            let copied = try await client.withConnection { connection in
                try await connection.copyFrom("COPY payments (id, reference, amount, note, paid_at, settled, trace) FROM STDIN") { writer in
                    for i in 0..<count {
                        let name = Self.awkwardNames[i % Self.awkwardNames.count]
                        let note: String? = i % 7 == 0 ? nil : name + " #\(i)"
                        if i % 2 == 0 {
                            try await writer.write(
                                Int64(i), "REF-\(i)", Int64(i) * 1000, note,
                                base.addingTimeInterval(Double(i)), i % 3 == 0, trace)
                        } else {
                            try await writer.write(row: [
                                Int64(i), "REF-\(i)", Int64(i) * 1000, note,
                                base.addingTimeInterval(Double(i)), i % 3 == 0, trace,
                            ])
                        }
                    }
                    #expect(writer.rowCount == count)
                }
            }
            #expect(copied == count)

            let (rows, sum, nulls) = try await client.query("""
                SELECT count(*), sum(amount)::int8, count(*) FILTER (WHERE note IS NULL) FROM payments
                """)[0].decode((Int64, Int64, Int64).self)
            #expect(rows == Int64(count))
            #expect(sum == expectedSum)
            #expect(nulls == Int64((0..<count).filter { $0 % 7 == 0 }.count))

            let digest = try await client.query("""
                SELECT encode(sha256(convert_to(string_agg(id || '|' || coalesce(note, '<null>') || ';', '' ORDER BY id), 'UTF8')), 'hex')
                FROM payments
                """)[0].decode(String.self)
            #expect(digest == SHA256.hexDigest(digestInput))

            let (paidAt, settled, storedTrace) = try await client.query(
                "SELECT paid_at, settled, trace FROM payments WHERE id = 12345")[0].decode((Date, Bool, UUID).self)
            #expect(paidAt == base.addingTimeInterval(12345))
            #expect(settled == (12345 % 3 == 0))
            #expect(storedTrace == trace)
        }
    }

    @Test func copiesBytesJSONAndArrays() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE blobs (id int8, body bytea, meta jsonb, tags text[], ids int8[])")
            let body: [UInt8] = [0, 9, 10, 13, 92, 255]
            let copied = try await client.withConnection { connection in
                try await connection.copyFrom("COPY blobs FROM STDIN") { writer in
                    try await writer.write(
                        Int64(1), body, PostgresRawJSON(#"{"k": "tab\there"}"#), ["a,b", "Sở \"x\""], [Int64(1), 2])
                    try await writer.write(row: [Int64(2), [UInt8](), nil, [String](), nil])
                }
            }
            #expect(copied == 2)
            let rows = try await client.query("SELECT body, meta, tags, ids FROM blobs ORDER BY id")
                .decode(([UInt8], PostgresRawJSON?, [String], [Int64]?).self)
            #expect(rows[0].0 == body)
            #expect(rows[0].1?.text == #"{"k": "tab\there"}"#)
            #expect(rows[0].2 == ["a,b", "Sở \"x\""])
            #expect(rows[0].3 == [1, 2])
            #expect(rows[1].0 == [])
            #expect(rows[1].1 == nil)
            #expect(rows[1].2 == [])
            #expect(rows[1].3 == nil)
        }
    }

    @Test func errorInTheBodyAbortsTheCopy() async throws {
        struct SourceFileBroken: Error {}
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int8)")
            await #expect(throws: SourceFileBroken.self) {
                try await client.withConnection { connection in
                    _ = try await connection.copyFrom("COPY t FROM STDIN") { writer in
                        for i in 0..<50_000 { try await writer.write(Int64(i)) }
                        throw SourceFileBroken()
                    }
                }
            }
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 0)
            #expect(try await client.execute("INSERT INTO t VALUES (1)") == 1)
        }
    }

    @Test func badDataSurfacesTheServerErrorWithoutTheValue() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int8)")
            let error = try await #require(throws: PostgresError.self) {
                try await client.withConnection { connection in
                    try await connection.copyFrom("COPY t FROM STDIN") { writer in
                        for i in 0..<10 { try await writer.write(Int64(i)) }
                        try await writer.write("not-a-number-secret")
                    }
                }
            }
            #expect(error.sqlState == "22P02")
            #expect(!error.description.contains("secret"))
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 0)
        }
    }

    @Test func copyIsPartOfTheSurroundingTransaction() async throws {
        try await withTestDatabase { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int8)")
            struct Undo: Error {}
            await #expect(throws: Undo.self) {
                try await client.withTransaction { connection in
                    _ = try await connection.copyFrom("COPY t FROM STDIN") { writer in
                        for i in 0..<1000 { try await writer.write(Int64(i)) }
                    }
                    throw Undo()
                }
            }
            #expect(try await client.query("SELECT count(*) FROM t")[0].decode(Int64.self) == 0)
        }
    }

    @Test func copyStatementThroughQueryIsRefused() async throws {
        try await withTestDatabase(maximumConnections: 1) { database in
            let client = database.client
            try await client.execute("CREATE TABLE t (v int8)")
            let error = await #expect(throws: PostgresError.self) { try await client.execute("COPY t FROM STDIN") }
            #expect(error?.code == .unexpectedResult)
            #expect(try await client.execute("INSERT INTO t VALUES (1)") == 1)
        }
    }
}
