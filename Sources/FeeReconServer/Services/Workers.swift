import CurlHTTP
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Signing

/// When the janitor asks the gateway about an intent still open, counted from its creation.
public struct CheckSchedule: Sendable {
    public var offsets: [Duration]

    public init(offsets: [Duration]) {
        precondition(!offsets.isEmpty, "a check schedule needs at least one offset")
        self.offsets = offsets
    }

    /// 5 minutes, 15 minutes, 1 hour, 6 hours and 24 hours after creation.
    public static let standard = CheckSchedule(offsets: [.seconds(300), .seconds(900), .seconds(3600), .seconds(21_600), .seconds(86_400)])
}

/// Settles intents whose outcome never arrived: queries the gateway on the check schedule and
/// applies what it says as named corrections (source `query`); after the schedule the intent
/// waits for a person. Claims are `FOR UPDATE SKIP LOCKED` with a lease, so any number of
/// replicas can run it side by side without doing the same work twice.
public struct Janitor: Service {
    let database: PostgresClient
    let payments: PaymentService
    let schedule: CheckSchedule
    let interval: Duration
    let batchSize: Int
    /// How long the intents of one claim stay this replica's: enough for every check of the claim
    /// to run at the gateway's timeout, so no other replica takes one up while it is in flight.
    let lease: Duration
    let logger: Logger

    /// Checks run this many at a time.
    static let concurrency = 8

    public init(
        database: PostgresClient, payments: PaymentService, schedule: CheckSchedule, interval: Duration = .seconds(1),
        batchSize: Int = 32, gatewayTimeout: Duration = .seconds(10), logger: Logger
    ) {
        self.database = database
        self.payments = payments
        self.schedule = schedule
        self.interval = interval
        self.batchSize = batchSize
        self.lease = Self.lease(batchSize: batchSize, gatewayTimeout: gatewayTimeout)
        self.logger = logger
    }

    /// A claim runs in rounds of `concurrency` checks; a check makes at most two gateway calls
    /// (the query, then the create sent again), each bounded by the timeout; then a margin for
    /// the database. Never less than two minutes.
    static func lease(batchSize: Int, gatewayTimeout: Duration) -> Duration {
        let rounds = (max(batchSize, 1) + concurrency - 1) / concurrency
        return max(.seconds(120), gatewayTimeout * (2 * rounds) + .seconds(60))
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastPurge = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                do {
                    let worked = try await runOnce()
                    if ContinuousClock.now - lastPurge >= .seconds(3600) {
                        lastPurge = ContinuousClock.now
                        let seconds = IdempotencyStore.retention.components.seconds
                        let purged = try await database.withConnection { db in try await IdempotencyStore.purge(olderThan: seconds, on: db) }
                        if purged > 0 { logger.info("idempotency keys purged", metadata: ["count": "\(purged)"]) }
                    }
                    if worked < batchSize { try await Task.sleep(for: interval) }
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("janitor pass failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    /// One pass: claims due intents and checks them, a few at a time. Returns how many it claimed.
    @discardableResult
    public func runOnce() async throws -> Int {
        let claimed = try await database.withTransaction { db in
            try await IntentStore.claimDueChecks(limit: batchSize, lease: lease, on: db)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for item in claimed {
                if running >= Self.concurrency {
                    try await group.next()
                    running -= 1
                }
                group.addTask { await self.check(item.intent, checksDone: item.checksDone) }
                running += 1
            }
            try await group.waitForAll()
        }
        return claimed.count
    }

    private func check(_ intent: IntentRecord, checksDone: Int) async {
        var log = logger
        log[metadataKey: "intent.id"] = "\(intent.id)"
        do {
            let after = try await payments.reconcileWithGateway(intent)
            let done = checksDone + 1
            if after.status.isOpen {
                if done >= schedule.offsets.count {
                    try await payments.requireManualReview(after)
                    log.warning("intent unresolved after its query schedule; manual review required")
                } else {
                    try await database.withConnection { db in
                        try await IntentStore.recordCheck(intentID: intent.id, checksDone: done, nextAfterCreation: schedule.offsets[done], on: db)
                    }
                }
            } else {
                try await database.withConnection { db in
                    try await IntentStore.recordCheck(intentID: intent.id, checksDone: done, nextAfterCreation: nil, on: db)
                }
            }
        } catch {
            log.error("janitor check failed", metadata: ["error": "\(error)"])
        }
    }
}

/// The backoff of notification deliveries: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 24 h after each
/// failed attempt; after the last, the notification is `failed` until replayed.
public struct DeliverySchedule: Sendable {
    public var delays: [Duration]

    public init(delays: [Duration]) { self.delays = delays }

    public static let standard = DeliverySchedule(delays: [
        .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000), .seconds(86_400),
    ])
}

/// Delivers the outbox: each notification is POSTed to its agency's URL as a Standard
/// Webhooks–signed message (stable webhook-id across retries) until the receiver answers 2xx,
/// and every attempt is recorded. Claims are `FOR UPDATE SKIP LOCKED` with a lease.
public struct OutboxWorker: Service {
    let database: PostgresClient
    let http: CurlHTTPClient
    let signer: WebhookSigner?
    let schedule: DeliverySchedule
    let timeout: Duration
    let interval: Duration
    let batchSize: Int
    let logger: Logger

    public init(
        database: PostgresClient, http: CurlHTTPClient, secrets: [WebhookSecret], schedule: DeliverySchedule = .standard,
        timeout: Duration = .seconds(10), interval: Duration = .seconds(1), batchSize: Int = 32, logger: Logger
    ) {
        self.database = database
        self.http = http
        signer = secrets.isEmpty ? nil : WebhookSigner(secrets: secrets)
        self.schedule = schedule
        self.timeout = timeout
        self.interval = interval
        self.batchSize = batchSize
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let worked = try await runOnce()
                    if worked < batchSize { try await Task.sleep(for: interval) }
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("outbox pass failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    @discardableResult
    public func runOnce() async throws -> Int {
        let lease = timeout + .seconds(60)
        let claimed = try await database.withTransaction { db in try await OutboxStore.claimDue(limit: batchSize, lease: lease, on: db) }
        await withTaskGroup(of: Void.self) { group in
            for item in claimed {
                group.addTask { await self.deliver(item.notification, to: item.url) }
            }
        }
        return claimed.count
    }

    private func deliver(_ notification: NotificationRecord, to url: String?) async {
        let attempt = notification.attempts + 1
        // The delay after this attempt, counted in the schedule begun at creation or the last replay.
        let inSchedule = attempt - notification.scheduleStart
        let started = Date()
        let clock = ContinuousClock()
        let start = clock.now
        var status: Int?
        var failure: String?
        if let url, let signer {
            var headers = HTTPHeaders()
            headers.add(contentsOf: signer.headers(for: notification.payload, id: notification.messageID).fields)
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "x-feerecon-event", value: notification.event)
            do {
                let response = try await http.execute(
                    HTTPClientRequest(method: .post, url: url, headers: headers, body: notification.payload), timeout: timeout)
                status = response.status
                if !(200..<300).contains(response.status) { failure = "receiver answered HTTP \(response.status)" }
            } catch {
                failure = "delivery failed (\(error.phase.code))"
            }
        } else {
            failure = url == nil ? "the agency has no notification URL" : "no notification secret is configured"
        }
        let delivered = failure == nil
        let retry: Duration? = delivered ? nil : (inSchedule <= schedule.delays.count ? schedule.delays[inSchedule - 1] : nil)
        do {
            try await database.withTransaction { db in
                try await OutboxStore.recordAttempt(
                    id: notification.id, startedAt: started, duration: clock.now - start, httpStatus: status,
                    error: failure, delivered: delivered, retryAfter: retry, on: db)
            }
        } catch {
            logger.error("outbox attempt not recorded", metadata: ["notification.id": "\(notification.id)", "error": "\(error)"])
        }
        if !delivered {
            logger.info("notification not delivered", metadata: [
                "notification.id": "\(notification.id)", "attempt": "\(attempt)", "reason": "\(failure ?? "")",
                "final": "\(retry == nil)",
            ])
        }
    }
}
