import ArgumentParser
import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import Hummingbird
import Logging
import PortalGateway
import Postgres
import ServiceLifecycle
import Signing

/// `feerecon serve`: the HTTP service (citizen pages, dossier API, gateway callbacks, operations).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the FeeRecon service.",
        discussion: """
            Settings come from the environment (see README, Configuration); options override them.
            Secrets are read from the environment or from files named by *_FILE variables and are
            never printed.
            """)

    @Option(help: "Address to listen on, host:port (default: $FEERECON_LISTEN or 127.0.0.1:8080).")
    var listen: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $FEERECON_DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .customLong("public-url"), help: "Base URL citizens and the gateway reach the service at (default: $FEERECON_PUBLIC_URL).")
    var publicURL: String?

    @Option(name: .customLong("gateway-url"), help: "The portal gateway's API base, e.g. https://host/ppdvcqg/v1 (default: $FEERECON_GATEWAY_URL).")
    var gatewayURL: String?

    @Flag(help: "Apply pending migrations before serving.")
    var migrate = false

    @Flag(help: "Seed demo agencies, dossiers and an API key, and list demo dossiers on the home page.")
    var demo = false

    func run() async throws {
        let logger = Logger(label: "feerecon")
        let settings = try ServiceEnvironment(
            environment: ProcessInfo.processInfo.environment, listen: listen, databaseURL: databaseURL,
            publicURL: publicURL, gatewayURL: gatewayURL)

        let database = PostgresClient(configuration: settings.database, logger: logger)
        // Two clients: the gateway's trusts its configured CA and presents its client
        // certificate; the one that delivers notifications to the agencies' one-stop systems
        // uses the system trust store and presents nothing.
        let http: CurlHTTPClient
        let notificationHTTP: CurlHTTPClient
        do {
            http = try CurlHTTPClient(configuration: settings.http, logger: logger)
        } catch {
            await database.shutdown()
            throw error
        }
        do {
            notificationHTTP = try CurlHTTPClient(configuration: settings.notificationHTTP, logger: logger)
        } catch {
            await http.shutdown()
            await database.shutdown()
            throw error
        }

        do {
            if migrate {
                let applied = try await Migrator().migrate(client: database, logger: logger)
                for migration in applied { logger.info("migration applied", metadata: ["migration": "\(migration.fileName)"]) }
            }
            let portal = PortalConfiguration(
                baseURL: settings.gatewayURL, partners: settings.partners, requestTimeout: settings.gatewayTimeout)
            let dependencies = AppDependencies(
                database: database,
                gateway: PortalGatewayClient(configuration: portal, http: http, logger: logger),
                notifications: PortalNotifications(partners: settings.partners), http: notificationHTTP,
                notificationSecrets: settings.notificationSecrets)
            let seeded: DemoData.Seeded?
            if demo, let partner = settings.partners.keys.sorted(by: { $0.rawValue < $1.rawValue }).first {
                seeded = try await DemoData.seed(
                    database: database, partner: partner, now: VietnamTime(unixSeconds: Int64(Date().timeIntervalSince1970)),
                    logger: logger)
            } else {
                seeded = nil
            }
            let appSettings = AppSettings(
                host: settings.host, port: settings.port,
                endpoints: PublicEndpoints(baseURL: settings.publicURL, callbackURL: settings.callbackURL),
                paymentWindow: settings.paymentWindow, demo: demo, callbackBatchSize: settings.callbackBatchSize,
                callbackConcurrency: settings.callbackConcurrency, runWorkers: settings.runWorkers,
                checkSchedule: settings.checkSchedule, gatewayTimeout: settings.gatewayTimeout)
            let publicURL = settings.publicURL
            let app = try await buildApplication(settings: appSettings, dependencies: dependencies, logger: logger) { port in
                print("FeeRecon is listening on \(settings.host):\(port)")
                print("  citizen pages:  \(publicURL)/")
                print("  dossier API:    \(publicURL)/v1/dossiers/{code}")
                print("  health:         \(publicURL)/healthz  \(publicURL)/readyz  \(publicURL)/metrics")
                if let seeded {
                    if let key = seeded.apiKey {
                        print("  demo API key (shown once): \(key)")
                    }
                    print("  demo dossiers:  \(seeded.dossierCodes.joined(separator: ", "))")
                }
                fflush(nil)
            }
            let group = ServiceGroup(
                configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            await notificationHTTP.shutdown()
            await http.shutdown()
            await database.shutdown()
            throw error
        }
        await notificationHTTP.shutdown()
        await http.shutdown()
        await database.shutdown()
    }
}

/// The service's settings read from the environment (README, Configuration).
struct ServiceEnvironment {
    var host: String
    var port: Int
    var publicURL: String
    /// Where the gateway posts callbacks, when it reaches the service at another address than
    /// citizens do (e.g. a container network); else `publicURL` + `/v1/callbacks/portal`.
    var callbackURL: String?
    var database: PostgresConfiguration
    var gatewayURL: String
    var gatewayTimeout: Duration
    var partners: [PartnerCode: [WebhookSecret]]
    /// The gateway's client: its timeout, CA bundle and client certificate.
    var http: CurlHTTPClient.Configuration
    /// The client for notifications to the one-stop systems: system trust store, no client
    /// certificate (each delivery sets its own timeout).
    var notificationHTTP: CurlHTTPClient.Configuration
    var paymentWindow: Duration?
    var notificationSecrets: [WebhookSecret]
    var checkSchedule: CheckSchedule
    /// Whether this replica runs the janitor and the outbox worker (any number of replicas may).
    var runWorkers: Bool
    /// Group commit of callbacks: at most this many per transaction, this many transactions at once.
    var callbackBatchSize: Int
    var callbackConcurrency: Int

    init(environment env: [String: String], listen: String?, databaseURL: String?, publicURL: String?, gatewayURL: String?) throws {
        let listenText = listen ?? env["FEERECON_LISTEN"] ?? "127.0.0.1:8080"
        guard let colon = listenText.lastIndex(of: ":"), let port = Int(listenText[listenText.index(after: colon)...]),
              (0...65535).contains(port)
        else { throw ValidationError("listen address must be host:port, e.g. 127.0.0.1:8080") }
        host = String(listenText[..<colon])
        self.port = port
        self.publicURL = publicURL ?? env["FEERECON_PUBLIC_URL"] ?? "http://\(listenText)"
        callbackURL = env["FEERECON_CALLBACK_URL"].flatMap { $0.isEmpty ? nil : $0 }

        guard let url = try databaseURL ?? Self.secret("FEERECON_DATABASE_URL", env) else {
            throw ValidationError("no database: set FEERECON_DATABASE_URL (or FEERECON_DATABASE_URL_FILE) or pass --database-url")
        }
        database = try PostgresConfiguration(url: url)
        if let size = env["FEERECON_DB_POOL_SIZE"] {
            guard let n = Int(size), (1...256).contains(n) else { throw ValidationError("FEERECON_DB_POOL_SIZE must be 1–256") }
            database.pool.maximumConnections = n
        }
        // Every statement of the service is a fixed text, so preparing each once per connection
        // saves the server parsing and planning it on every call.
        database.preparedStatementCacheCapacity = 256
        if let size = env["FEERECON_DB_STATEMENT_CACHE"] {
            guard let n = Int(size), (0...10_000).contains(n) else { throw ValidationError("FEERECON_DB_STATEMENT_CACHE must be 0–10000") }
            database.preparedStatementCacheCapacity = n
        }
        if database.applicationName == nil { database.applicationName = "feerecon" }

        guard let gateway = gatewayURL ?? env["FEERECON_GATEWAY_URL"] else {
            throw ValidationError("no gateway: set FEERECON_GATEWAY_URL (scripts/run starts the sandbox and sets it)")
        }
        self.gatewayURL = gateway
        gatewayTimeout = .milliseconds(Int(env["FEERECON_GATEWAY_TIMEOUT_MS"] ?? "") ?? 10_000)

        let codes = (env["FEERECON_PARTNERS"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        guard !codes.isEmpty else { throw ValidationError("set FEERECON_PARTNERS, e.g. BTH, and FEERECON_PARTNER_SECRETS_BTH(_FILE)") }
        var partners: [PartnerCode: [WebhookSecret]] = [:]
        for code in codes {
            guard let partner = PartnerCode(rawValue: code) else { throw ValidationError("partner code \(code) is not valid") }
            guard let text = try Self.secret("FEERECON_PARTNER_SECRETS_\(code)", env) else {
                throw ValidationError("no secret for partner \(code): set FEERECON_PARTNER_SECRETS_\(code) or ..._FILE")
            }
            var secrets: [WebhookSecret] = []
            for item in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }) {
                do {
                    secrets.append(try WebhookSecret(String(item)))
                } catch {
                    throw ValidationError("a secret of partner \(code) is not a valid whsec_ secret (\(error))")
                }
            }
            guard !secrets.isEmpty else { throw ValidationError("no secret for partner \(code)") }
            partners[partner] = secrets
        }
        self.partners = partners

        var http = CurlHTTPClient.Configuration()
        http.timeout = gatewayTimeout
        http.connectTimeout = .seconds(5)
        http.tls.caFile = env["FEERECON_GATEWAY_CA_FILE"]
        if let cert = env["FEERECON_GATEWAY_CLIENT_CERT"], let key = env["FEERECON_GATEWAY_CLIENT_KEY"] {
            http.tls.clientCertificate = .init(
                certificateFile: cert, privateKeyFile: key, privateKeyPassword: try Self.secret("FEERECON_GATEWAY_CLIENT_KEY_PASSWORD", env))
        }
        self.http = http
        var notificationHTTP = CurlHTTPClient.Configuration()
        notificationHTTP.connectTimeout = .seconds(5)
        self.notificationHTTP = notificationHTTP
        let defaults = AppSettings(endpoints: PublicEndpoints(baseURL: self.publicURL))
        callbackBatchSize = defaults.callbackBatchSize
        callbackConcurrency = defaults.callbackConcurrency
        if let text = env["FEERECON_CALLBACK_BATCH_SIZE"] {
            guard let n = Int(text), (1...1000).contains(n) else { throw ValidationError("FEERECON_CALLBACK_BATCH_SIZE must be 1–1000") }
            callbackBatchSize = n
        }
        if let text = env["FEERECON_CALLBACK_CONCURRENCY"] {
            guard let n = Int(text), (1...64).contains(n) else { throw ValidationError("FEERECON_CALLBACK_CONCURRENCY must be 1–64") }
            callbackConcurrency = n
        }
        switch env["FEERECON_RUN_WORKERS"]?.lowercased() {
        case nil, "", "true", "1", "yes": runWorkers = true
        case "false", "0", "no": runWorkers = false
        default: throw ValidationError("FEERECON_RUN_WORKERS must be true or false")
        }
        paymentWindow = env["FEERECON_PAYMENT_WINDOW_SECONDS"].flatMap(Int.init).map { .seconds($0) }
        notificationSecrets = try (Self.secret("FEERECON_NOTIFY_SECRETS", env) ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," })
            .map { item in
                do { return try WebhookSecret(String(item)) } catch {
                    throw ValidationError("a secret in FEERECON_NOTIFY_SECRETS is not a valid whsec_ secret")
                }
            }
        if let text = env["FEERECON_CHECK_SCHEDULE"] {
            let offsets = try text.split(separator: ",").map { part in
                guard let duration = Self.duration(String(part)) else {
                    throw ValidationError("FEERECON_CHECK_SCHEDULE must be durations like 5m,15m,1h,6h,24h")
                }
                return duration
            }
            guard !offsets.isEmpty else { throw ValidationError("FEERECON_CHECK_SCHEDULE is empty") }
            checkSchedule = CheckSchedule(offsets: offsets)
        } else {
            checkSchedule = .standard
        }
    }

    /// `250ms`, `30s`, `5m`, `6h`, `1d`.
    static func duration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            guard let value = Int64(text.dropLast(suffix.count)), value > 0 else { return nil }
            return .milliseconds(value * milliseconds)
        }
        return nil
    }

    /// A secret from `NAME`, or from the file `NAME_FILE` names (trailing newline dropped).
    static func secret(_ name: String, _ env: [String: String]) throws -> String? {
        if let value = env[name], !value.isEmpty { return value }
        guard let path = env[name + "_FILE"], !path.isEmpty else { return nil }
        do {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw ValidationError("\(name)_FILE names a file that cannot be read")
        }
    }
}
