import ArgumentParser
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres

/// `feerecon api-key create`: issues an API key for the one-stop system, scoped to agencies.
struct APIKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-key", abstract: "Manage API keys of the one-stop dossier system.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a key; it is printed once and only its hash is stored.")

        @Option(help: "A name for the key (who uses it).")
        var name: String

        @Option(name: .customLong("agency"), help: "An agency code the key may act for (repeatable).")
        var agencies: [String]

        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
        var databaseURL: String?

        func run() async throws {
            let logger = Logger(label: "feerecon.api-key")
            guard let url = databaseURL ?? ProcessInfo.processInfo.environment["FEERECON_DATABASE_URL"] else {
                throw ValidationError("no database: pass --database-url or set FEERECON_DATABASE_URL")
            }
            let codes = try agencies.map { text in
                guard let code = AgencyCode(rawValue: text) else { throw ValidationError("\(text) is not an agency code") }
                return code
            }
            guard !codes.isEmpty else { throw ValidationError("name at least one --agency") }
            let client = PostgresClient(configuration: try PostgresConfiguration(url: url), logger: logger)
            do {
                let key = try await client.withTransaction { db in
                    var ids: [Int64] = []
                    for code in codes {
                        guard let agency = try await DossierStore.agency(code: code, on: db) else {
                            throw ValidationError("agency \(code) is not registered")
                        }
                        ids.append(agency.id)
                    }
                    let key = try await APIKeyStore.create(name: name, agencyIDs: ids, on: db)
                    try await AuditStore.record(
                        actor: .operator, actorID: ProcessInfo.processInfo.environment["USER"] ?? "operator",
                        action: "api_key.created", agencyID: nil, subject: key.id.uuidString.lowercased(),
                        detail: ["name": name, "agencies": codes.map(\.rawValue).joined(separator: ",")], requestID: nil, on: db)
                    return key
                }
                print(key.plaintext)
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    }
}
