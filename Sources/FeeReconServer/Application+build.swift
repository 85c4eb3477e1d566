import FeeReconCore
import FeeReconStore
import Foundation
import Hummingbird
import Logging
import PortalGateway
import Postgres
import CurlHTTP
import Prometheus
import ServiceLifecycle
import Signing

/// Everything the application needs from outside, so `main` and the tests build it the same way.
public struct AppDependencies: Sendable {
    public var database: PostgresClient
    public var gateway: any PaymentGateway
    public var notifications: PortalNotifications
    public var clock: UnixClock
    public var metrics: PrometheusCollectorRegistry
    /// The client that delivers notifications to the one-stop system.
    public var http: CurlHTTPClient
    /// Secrets that sign notifications to the one-stop system; the first signs.
    public var notificationSecrets: [WebhookSecret]

    public init(
        database: PostgresClient, gateway: any PaymentGateway, notifications: PortalNotifications, http: CurlHTTPClient,
        notificationSecrets: [WebhookSecret], clock: @escaping UnixClock = systemUnixClock,
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) {
        self.database = database
        self.gateway = gateway
        self.notifications = notifications
        self.http = http
        self.notificationSecrets = notificationSecrets
        self.clock = clock
        self.metrics = metrics
    }
}

/// The service's settings (see README: Configuration).
public struct AppSettings: Sendable {
    public var host: String
    public var port: Int
    public var endpoints: PublicEndpoints
    /// The payment window asked of the gateway; nil leaves the gateway's 15 minutes.
    public var paymentWindow: Duration?
    /// Whether the home page lists demo dossiers.
    public var demo: Bool
    /// At most this many callbacks are committed by one transaction.
    public var callbackBatchSize: Int
    /// At most this many callback transactions run at once.
    public var callbackConcurrency: Int
    /// Whether this process runs the janitor and the outbox worker (any number of replicas may).
    public var runWorkers: Bool
    public var checkSchedule: CheckSchedule
    public var deliverySchedule: DeliverySchedule
    /// How often idle workers look for due work.
    public var workerInterval: Duration
    /// The gateway client's timeout per call: the janitor's lease on the intents it claims is
    /// long enough for its checks at this timeout.
    public var gatewayTimeout: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 8080, endpoints: PublicEndpoints, paymentWindow: Duration? = nil,
        demo: Bool = false, callbackBatchSize: Int = 64, callbackConcurrency: Int = 2, runWorkers: Bool = true,
        checkSchedule: CheckSchedule = .standard, deliverySchedule: DeliverySchedule = .standard,
        workerInterval: Duration = .seconds(1), gatewayTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.paymentWindow = paymentWindow
        self.demo = demo
        self.callbackBatchSize = callbackBatchSize
        self.callbackConcurrency = callbackConcurrency
        self.runWorkers = runWorkers
        self.checkSchedule = checkSchedule
        self.deliverySchedule = deliverySchedule
        self.workerInterval = workerInterval
        self.gatewayTimeout = gatewayTimeout
    }
}

/// Builds the HTTP application: the one entry point of `feerecon serve` and of every test.
public func buildApplication(
    settings: AppSettings, dependencies: AppDependencies, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let database = dependencies.database
    let payments = PaymentService(
        database: database, gateway: dependencies.gateway, endpoints: settings.endpoints, clock: dependencies.clock,
        paymentWindow: settings.paymentWindow, firstCheck: settings.checkSchedule.offsets[0], logger: logger)
    let dossiers = DossierService(database: database, logger: logger)
    let pages = try await Pages.load()
    let metrics = ServiceMetrics(registry: dependencies.metrics)
    let processor = CallbackProcessor(database: database, notifications: dependencies.notifications, metrics: metrics, logger: logger)
    let batcher = CallbackBatcher(
        maxBatch: settings.callbackBatchSize, maxConcurrentBatches: settings.callbackConcurrency, process: processor.process)

    let router = Router(context: AppRequestContext.self)
    router.add(middleware: ProblemMiddleware())
    OperationsController(database: database, registry: dependencies.metrics).register(on: router)
    CallbackController(notifications: dependencies.notifications, batcher: batcher, rejections: RejectionLog(metrics: metrics)).register(on: router)
    CitizenPagesController(
        database: database, payments: payments, pages: pages, endpoints: settings.endpoints, demo: settings.demo, logger: logger
    ).register(on: router)
    router.group("v1")
        .add(middleware: APIKeyAuthenticator(database: database))
        .group(context: APIClientContext.self)
        .addRoutes(DossierAPIController(database: database, dossiers: dossiers, payments: payments, endpoints: settings.endpoints).routes)
        .addRoutes(NotificationAPIController(database: database).routes)

    var services: [any Service] = []
    if settings.runWorkers {
        services.append(Janitor(
            database: database, payments: payments, schedule: settings.checkSchedule, interval: settings.workerInterval,
            gatewayTimeout: settings.gatewayTimeout, logger: logger))
        services.append(OutboxWorker(
            database: database, http: dependencies.http, secrets: dependencies.notificationSecrets,
            schedule: settings.deliverySchedule, interval: settings.workerInterval, logger: logger))
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "FeeRecon"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? settings.port) },
        logger: logger)
}
