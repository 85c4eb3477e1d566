import ArgumentParser
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres

/// `feerecon agency`: registers agencies and where their one-stop system hears of paid dossiers.
struct Agencies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agency", abstract: "Manage the agencies whose dossiers are paid through the service.",
        subcommands: [Add.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an agency, or update its name, partner and notification URL.")

        @Option(help: "Agency code: dot-separated groups of A-Z and 0-9, e.g. 000.00.15.H10.")
        var code: String

        @Option(help: "Agency name (at most 200 characters).")
        var name: String

        @Option(help: "The portal partner code (MaDoiTac) its payments go through, e.g. BTH.")
        var partner: String

        @Option(name: .customLong("notify-url"), help: "Where \"dossier paid\" notifications are POSTed (http or https).")
        var notifyURL: String?

        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
        var databaseURL: String?

        func run() async throws {
            guard let agency = AgencyCode(rawValue: code) else { throw ValidationError("\(code) is not an agency code") }
            guard let partnerCode = PartnerCode(rawValue: partner) else { throw ValidationError("\(partner) is not a partner code") }
            do { try NameRule.validate(name, field: "name") } catch { throw ValidationError(error.description) }
            if let notifyURL, !(notifyURL.hasPrefix("https://") || notifyURL.hasPrefix("http://")) || notifyURL.contains(" ") {
                throw ValidationError("--notify-url must be an http(s) URL")
            }
            let client = try OperatorDatabase.client(databaseURL)
            do {
                try await client.withTransaction { db in
                    let record = try await DossierStore.upsertAgency(code: agency, name: name, partner: partnerCode, on: db)
                    if let notifyURL { try await DossierStore.setNotifyURL(agencyID: record.id, url: notifyURL, on: db) }
                    try await AuditStore.record(
                        actor: .operator, actorID: OperatorDatabase.operatorName, action: "agency.saved", agencyID: record.id,
                        subject: agency.rawValue, detail: ["partner": partnerCode.rawValue], requestID: nil, on: db)
                }
                print("agency \(agency) saved")
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered agencies.")

        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
        var databaseURL: String?

        func run() async throws {
            let client = try OperatorDatabase.client(databaseURL)
            do {
                for agency in try await client.withConnection({ db in try await DossierStore.agencies(on: db) }) {
                    print("\(agency.code)\t\(agency.partner)\t\(agency.name)")
                }
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    }
}

/// The database connection of one-off operator commands.
enum OperatorDatabase {
    static func client(_ url: String?) throws -> PostgresClient {
        guard let url = url ?? ProcessInfo.processInfo.environment["FEERECON_DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("no database: pass --database-url or set FEERECON_DATABASE_URL")
        }
        var configuration = try PostgresConfiguration(url: url)
        configuration.pool.maximumConnections = 2
        if configuration.applicationName == nil { configuration.applicationName = "feerecon-operator" }
        return PostgresClient(configuration: configuration, logger: Logger(label: "feerecon.operator"))
    }

    static var operatorName: String { ProcessInfo.processInfo.environment["USER"] ?? "operator" }
}
