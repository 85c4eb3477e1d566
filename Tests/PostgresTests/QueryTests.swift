import Foundation
@testable import Postgres
import Testing

@Suite("Query building and configuration (no database)")
struct QueryTests {
    @Test func interpolatedValuesBecomeNumberedParameters() {
        let name = "Nguyễn Văn Ánh"
        let amount: Int64 = 150_000
        let query: PostgresQuery = "INSERT INTO t (name, amount) VALUES (\(name), \(amount))"
        #expect(query.sql == "INSERT INTO t (name, amount) VALUES ($1, $2)")
        #expect(query.bindings.count == 2)
        #expect(query.bindings.dataTypes == [.text, .int8])
        #expect(!query.description.contains(name))
        #expect(!query.description.contains("150000"))
    }

    @Test func literalWithoutInterpolationHasNoParameters() {
        let query: PostgresQuery = "SELECT 1"
        #expect(query.sql == "SELECT 1")
        #expect(query.bindings.count == 0)
    }

    @Test func fragmentsAreRenumbered() {
        let status = "pending"
        let agency = "STP"
        let filter: PostgresQuery = "status = \(status) AND agency = \(agency)"
        let limit = 10
        let query: PostgresQuery = "SELECT id FROM intents WHERE id > \(5) AND \(fragment: filter) LIMIT \(limit)"
        #expect(query.sql == "SELECT id FROM intents WHERE id > $1 AND status = $2 AND agency = $3 LIMIT $4")
        #expect(query.bindings.dataTypes == [.int8, .text, .text, .int8])
    }

    @Test func concatenationRenumbers() {
        var query: PostgresQuery = "SELECT * FROM t WHERE a = \(1)"
        query += " AND b = \("x")"
        query = query + " AND c = ANY(\([Int64(1), 2]))"
        #expect(query.sql == "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = ANY($3)")
        #expect(query.bindings.dataTypes == [.int8, .text, .int8Array])
    }

    @Test func fragmentPlaceholdersBeyondNine() {
        var inner: PostgresQuery = ""
        for i in 0..<12 { inner += "\(i)," }
        let query: PostgresQuery = "SELECT \(0), \(fragment: inner) \(99)"
        #expect(query.bindings.count == 14)
        #expect(query.sql.hasPrefix("SELECT $1, $2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13, $14"))
    }

    @Test func identifiersAreQuoted() {
        let query: PostgresQuery = "CREATE DATABASE \(identifier: #"we"ird"#)"
        #expect(query.sql == #"CREATE DATABASE "we""ird""#)
        #expect(query.bindings.count == 0)
    }

    @Test func optionalNilIsNullOfTheWrappedType() {
        let missing: String? = nil
        let query: PostgresQuery = "SELECT \(missing)"
        #expect(query.bindings.dataTypes == [.text])
    }

    @Test func urlIsParsedAndPasswordNeverDescribed() throws {
        let configuration = try PostgresConfiguration(
            url: "postgresql://fee%40user:s3cr%2Ft@127.0.0.1:6543/feerecon?application_name=api&sslmode=disable&connect_timeout=3")
        #expect(configuration.username == "fee@user")
        #expect(configuration.password == "s3cr/t")
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 6543)
        #expect(configuration.database == "feerecon")
        #expect(configuration.applicationName == "api")
        #expect(configuration.tls == .disable)
        #expect(configuration.connectTimeout == .seconds(3))
        #expect(!configuration.description.contains("s3cr"))
        #expect(!"\(configuration)".contains("s3cr"))
        #expect(!String(reflecting: configuration).contains("s3cr"))
        #expect(configuration.description == "postgresql://fee@user@127.0.0.1:6543/feerecon?application_name=api&sslmode=disable")
    }

    @Test func urlDefaults() throws {
        let configuration = try PostgresConfiguration(url: "postgres://app@localhost")
        #expect(configuration.port == 5432)
        #expect(configuration.database == "app")
        #expect(configuration.password == nil)
        #expect(configuration.pool.maximumConnections == 8)
    }

    @Test(arguments: [
        "mysql://u@h/db",
        "postgresql://h/db",
        "postgresql://u@/db",
        "postgresql://u:pw@h/db?sslmode=sometimes",
        "postgresql://u:pw@h/db?password=other",
    ])
    func invalidURLsAreRefusedWithoutEchoingThem(url: String) {
        #expect {
            try PostgresConfiguration(url: url)
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .invalidConfiguration && !error.description.contains("pw")
        }
    }

    @Test func errorDescriptionNamesKindAndIdentifiersOnly() {
        var error = PostgresError.Code.server.description
        #expect(error == "server")
        error = PostgresError.Code.poolTimeout.description
        #expect(error == "poolTimeout")
    }

    @Test func backoffGrowsAndStaysWithinBounds() {
        let policy = PostgresConfiguration.TransactionRetry(
            maximumAttempts: 10, initialDelay: .milliseconds(10), maximumDelay: .milliseconds(80))
        for attempt in 1...10 {
            let ceiling = min(Duration.milliseconds(10) * (1 << (attempt - 1)), .milliseconds(80))
            for _ in 0..<20 {
                let delay = PostgresClient.backoff(attempt: attempt, policy: policy)
                #expect(delay >= ceiling / 2 && delay <= ceiling)
            }
        }
    }
}
