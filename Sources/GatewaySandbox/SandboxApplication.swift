import CurlHTTP
import Hummingbird
import Logging
import NIOCore
import Postgres
import ServiceLifecycle

/// Builds the gateway sandbox: the §1–§6 endpoints, the hosted page, the control API, and the
/// timer and callback workers, over the sandbox's own database (schema created here, under an
/// advisory lock). `onServerRunning` receives the bound port (useful with port 0). Used by
/// `feerecon sandbox` and by the tests.
public func buildSandboxApplication(
    configuration: SandboxConfiguration,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    try configuration.settings.validate()
    var database = configuration.database
    database.serverSettings["synchronous_commit"] = "off"
    if database.applicationName == nil { database.applicationName = "feerecon-sandbox" }
    if database.preparedStatementCacheCapacity == 0 { database.preparedStatementCacheCapacity = 64 }
    let logger = configuration.logger
    let client = PostgresClient(configuration: database, logger: logger)
    let store = SandboxStore(client: client, logger: logger)
    do {
        try await store.migrate()
    } catch {
        await client.shutdown()
        throw error
    }
    var httpConfiguration = CurlHTTPClient.Configuration()
    httpConfiguration.userAgent = "PPDVCQG-Sandbox"
    httpConfiguration.connectTimeout = .milliseconds(min(10_000, configuration.settings.callbackTimeoutMilliseconds))
    let http: CurlHTTPClient
    do {
        http = try CurlHTTPClient(configuration: httpConfiguration, logger: logger)
    } catch {
        await client.shutdown()
        throw error
    }

    let engine = SandboxEngine(configuration: configuration, store: store)
    let router = Router(context: SandboxRequestContext.self)
    ProtocolRoutes(engine: engine).register(on: router)
    try PaymentPage(engine: engine).register(on: router)
    ControlRoutes(engine: engine).register(on: router)

    let configuredURL = configuration.publicBaseURL != nil
    let host = configuration.host
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: [
            // Listed first, so they stop last: the workers and the server use them.
            client,
            http,
            TimerWorker(engine: engine, pollMilliseconds: configuration.workerPollMilliseconds),
            CallbackDispatcher(
                engine: engine, http: http, pollMilliseconds: configuration.workerPollMilliseconds,
                maxInFlight: configuration.maxConcurrentCallbacks),
        ],
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? configuration.port
            engine.setBoundAddress(host: host, port: port, configured: configuredURL)
            await onServerRunning(port)
        },
        logger: logger)
}
