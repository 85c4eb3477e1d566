import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres
import Signing

/// Where the service lives on the web, for the links it gives the gateway and citizens.
public struct PublicEndpoints: Sendable {
    /// e.g. `https://thanhtoan.example.gov.vn` (no trailing slash).
    public var baseURL: String
    /// The callback URL the gateway posts results to (`UrlThongBao`).
    public var callbackURL: String

    public init(baseURL: String, callbackURL: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.callbackURL = callbackURL ?? self.baseURL + "/v1/callbacks/portal"
    }

    public func payLink(token: String) -> String { baseURL + "/pay/" + token }
    public func returnURL(token: String) -> String { baseURL + "/pay/" + token + "/return" }
}

/// Starting and following payments: creates intents (committed before the gateway is called),
/// talks to the gateway, and applies what it answers. Owns its transactions.
public struct PaymentService: Sendable {
    let database: PostgresClient
    let gateway: any PaymentGateway
    let endpoints: PublicEndpoints
    let clock: UnixClock
    /// The payment window asked of the gateway; nil leaves the gateway's default (15 minutes).
    let paymentWindow: Duration?
    /// When the janitor first checks a new intent.
    let firstCheck: Duration
    let logger: Logger
    /// The gateway's acceptances of new intents, recorded in groups: one statement and one commit
    /// for all that arrive while the previous group commits (see `GroupCommit`).
    let acceptances: GroupCommit<IntentStore.Acceptance, Result<IntentRecord?, any Error>>

    public init(
        database: PostgresClient, gateway: any PaymentGateway, endpoints: PublicEndpoints, clock: @escaping UnixClock,
        paymentWindow: Duration?, firstCheck: Duration = CheckSchedule.standard.offsets[0], logger: Logger
    ) {
        self.database = database
        self.gateway = gateway
        self.endpoints = endpoints
        self.clock = clock
        self.paymentWindow = paymentWindow
        self.firstCheck = firstCheck
        self.logger = logger
        self.acceptances = GroupCommit(maxBatch: 64, maxConcurrentBatches: 2) { batch in
            await Self.record(batch, database: database, logger: logger)
        }
    }

    /// Records a group of acceptances in one statement. Each answer is the accepted intent, nil
    /// when its row had changed meanwhile (or it was asked twice in the group: the first counts),
    /// or the error that kept it from being recorded. Rows are updated in the order of their ids,
    /// so two groups that share an intent cannot deadlock. If the server refuses the group's
    /// statement for a row's data (an integrity or data error, say a gateway transaction id
    /// already used), each is tried alone, so that one bad row cannot fail the others; any other
    /// failure (the database unreachable, the pool exhausted) is every acceptance's answer.
    static func record(
        _ batch: [IntentStore.Acceptance], database: PostgresClient, logger: Logger
    ) async -> [Result<IntentRecord?, any Error>] {
        var first: [UUID: Int] = [:]
        for (index, acceptance) in batch.enumerated() where first[acceptance.intent.id] == nil {
            first[acceptance.intent.id] = index
        }
        let unique = batch.enumerated().filter { first[$0.element.intent.id] == $0.offset }.map(\.element)
            .sorted { $0.intent.id.uuidString < $1.intent.id.uuidString }
        func accept(_ group: [IntentStore.Acceptance]) async throws -> [UUID: IntentRecord] {
            try await database.withConnection { db in try await IntentStore.accept(many: group, on: db) }
        }
        do {
            let accepted = try await accept(unique)
            return batch.enumerated().map { index, acceptance in
                .success(first[acceptance.intent.id] == index ? accepted[acceptance.intent.id] : nil)
            }
        } catch {
            guard unique.count > 1, (error as? PostgresError)?.isDataRefusal == true else { return batch.map { _ in .failure(error) } }
            logger.warning("intent acceptance group failed; recording one by one", metadata: ["batch.size": "\(batch.count)", "error": "\(error)"])
            var answers: [Result<IntentRecord?, any Error>] = []
            for (index, acceptance) in batch.enumerated() {
                guard first[acceptance.intent.id] == index else {
                    answers.append(.success(nil))
                    continue
                }
                do {
                    answers.append(.success(try await accept([acceptance])[acceptance.intent.id]))
                } catch {
                    answers.append(.failure(error))
                }
            }
            return answers
        }
    }

    /// The gateway's payment window, for deciding when a create that never arrived is moot.
    var effectiveWindow: Duration { paymentWindow ?? .seconds(900) }

    /// Who asked for a payment, for the intent's events.
    public enum Requester: Sendable {
        case apiClient(APIClient)
        case citizen
    }

    /// An Idempotency-Key claim for intent creation.
    public struct Idempotency: Sendable {
        public var apiKey: UUID
        public var key: String
        public var requestHash: [UInt8]
        /// The body of the 201 answer for a new intent. When given, the answer is stored with the
        /// key in the same statement that records the gateway's acceptance (`.answered`).
        public var createdAnswer: (@Sendable (IntentRecord) throws -> [UInt8])?
    }

    /// The result of asking to pay a dossier.
    public enum StartResult: Sendable {
        /// An intent (new or the dossier's open one); `created` says whether this call made it.
        case intent(IntentRecord, created: Bool)
        /// The same Idempotency-Key and request answered before: send this again.
        case replay(status: Int, body: [UInt8])
        /// A new intent the gateway accepted, answered with `body` (201), which is already stored
        /// with the Idempotency-Key.
        case answered(IntentRecord, body: [UInt8])
    }

    /// Which dossier to pay: by id (the citizen's pay link resolved it), or by code on behalf of
    /// an API client, which must act for the dossier's agency (otherwise it is not found).
    public enum DossierSelector: Sendable {
        case id(Int64)
        case code(DossierCode, agencies: Set<Int64>)

        /// Which dossier, as the store finds it.
        var dossier: DossierStore.Selector {
            switch self {
            case .id(let id): .id(id)
            case .code(let code, _): .code(code)
            }
        }

        /// Whether the caller may pay `dossier` (an API client only within its agencies).
        func admits(_ dossier: DossierRecord) -> Bool {
            switch self {
            case .id: true
            case .code(_, let agencies): agencies.contains(dossier.agency.id)
            }
        }
    }

    /// Starts payment of a dossier, or returns its open intent. A new intent is committed as
    /// `created` before the gateway is called; then it becomes `pending` (accepted), `failed`
    /// (a definite refusal) or `unknown` (no definite answer — never `failed` on a timeout).
    ///
    /// The common case is two statements in one transaction: the dossier locked (its agency
    /// checked against the caller's scope) with the Idempotency-Key claimed, and the intent
    /// inserted with its event and the key pointed at it — unless the dossier has an open intent,
    /// which is then returned instead.
    public func startPayment(
        dossier selector: DossierSelector, payerAddress: String, requester: Requester, idempotency: Idempotency?,
        requestID: String?
    ) async throws -> StartResult {
        let source: EventSource
        let actor: String
        switch requester {
        case .apiClient(let client):
            source = .api
            actor = "api_key:\(client.id.uuidString.lowercased())"
        case .citizen:
            source = .citizen
            actor = "citizen"
        }

        enum Prepared: Sendable {
            case replay(status: Int, body: [UInt8])
            case existing(IntentRecord)
            case new(IntentRecord)
        }
        let prepared: Prepared = try await database.withTransaction { db in
            let found: DossierRecord?
            // With a key, the dossier's lock and the key's claim are one statement.
            var claimed = true
            if let idempotency {
                let locked = try await DossierStore.lockedClaiming(
                    selector.dossier, apiKey: idempotency.apiKey, key: idempotency.key, requestHash: idempotency.requestHash, on: db)
                found = locked?.dossier
                claimed = locked?.claimed ?? true
            } else {
                found = try await DossierStore.dossier(selector.dossier, forUpdate: true, on: db)
            }
            guard let dossier = found, selector.admits(dossier) else {
                switch selector {
                case .id: throw AppError(.notFound, "no such dossier")
                case .code(let code, _): throw AppError(.notFound, "no dossier \(code) for this API key")
                }
            }
            if let idempotency, !claimed {
                switch try await IdempotencyStore.existing(
                    apiKey: idempotency.apiKey, key: idempotency.key, requestHash: idempotency.requestHash, on: db)
                {
                case .claimed: break
                case .replay(let status, let body): return .replay(status: status, body: body)
                case .mismatch:
                    throw AppError(.idempotencyKeyReused, "this Idempotency-Key was used with a different request")
                case .inProgress(let intentID):
                    if let intentID, let intent = try await IntentStore.intent(id: intentID, on: db), intent.status != .created {
                        return .existing(intent)
                    }
                    throw AppError(.idempotencyRequestInProgress, "the first request with this Idempotency-Key is still being processed; retry shortly")
                }
            }
            /// The dossier's open intent, if it has one, with the key pointed at it.
            func existingOpen() async throws -> IntentRecord? {
                guard let open = try await IntentStore.openIntent(dossierID: dossier.id, on: db) else { return nil }
                if let idempotency { try await IdempotencyStore.attach(apiKey: idempotency.apiKey, key: idempotency.key, intentID: open.id, on: db) }
                return open
            }
            let payable = dossier.status == .awaitingPayment && dossier.amountPaid == .zero
            // A dossier that cannot take a new payment may still have an open one to return.
            if !payable, let open = try await existingOpen() { return .existing(open) }
            guard dossier.status == .awaitingPayment else {
                throw AppError(.alreadyPaid, "dossier \(dossier.code) is already paid")
            }
            guard dossier.amountPaid == .zero else {
                throw AppError(.conflict, "dossier \(dossier.code) is partly paid; an officer must settle the rest")
            }
            let now = VietnamTime(unixSeconds: clock())
            var generator = SystemRandomNumberGenerator()
            let reference = PaymentReference.random(using: &generator)
            let request = CreatePaymentRequest(
                partner: dossier.agency.partner, reference: reference, amount: dossier.amountDue, requestedAt: now,
                expiresAt: paymentWindow.map { now.adding(seconds: $0.components.seconds) }, payerAddress: payerAddress,
                description: "Thanh toan le phi ho so \(dossier.code.rawValue)",
                returnURL: endpoints.returnURL(token: dossier.payToken), notifyURL: endpoints.callbackURL,
                dossier: dossier.code, procedureCode: dossier.procedureCode, procedureName: dossier.procedureName,
                agencyCode: dossier.agency.code, agencyName: dossier.agency.name, applicantName: dossier.applicantName,
                feeLines: dossier.feeLines)
            let encoded: [UInt8]
            do {
                encoded = try gateway.encodeCreate(request)
            } catch {
                throw AppError(.internalError, "the payment request could not be prepared")
            }
            if let intent = try await IntentStore.insertUnlessOpen(
                id: SecureRandom.uuid(), partner: dossier.agency.partner, reference: reference, dossierID: dossier.id,
                amount: dossier.amountDue, createRequest: encoded, source: source, actor: actor, firstCheck: firstCheck,
                idempotencyKey: idempotency.map { ($0.apiKey, $0.key) }, on: db)
            {
                return .new(intent)
            }
            // Open intents are created only under the dossier's lock, which this transaction holds.
            guard let open = try await existingOpen() else { throw OpenIntentVanished(dossierID: dossier.id) }
            return .existing(open)
        }

        switch prepared {
        case .replay(let status, let body):
            return .replay(status: status, body: body)
        case .existing(let intent):
            // An intent left `created` or `unknown` is sent again with its stored bytes: the
            // gateway answers an identical create with the original reply.
            if intent.status == .created || intent.status == .unknown, intent.createRequest != nil,
               Date().timeIntervalSince(intent.createdAt) > 5 || intent.status == .unknown
            {
                return .intent(try await sendCreate(intent), created: false)
            }
            return .intent(intent, created: false)
        case .new(let intent):
            if let idempotency, let answer = idempotency.createdAnswer {
                let (sent, body) = try await sendCreate(intent, answering: (idempotency, answer))
                if let body { return .answered(sent, body: body) }
                return .intent(sent, created: true)
            }
            return .intent(try await sendCreate(intent), created: true)
        }
    }

    /// An insert refused for an open intent that the same locked transaction then did not find.
    struct OpenIntentVanished: Error {
        var dossierID: Int64
    }

    /// Sends the intent's stored create request and records the answer.
    func sendCreate(_ intent: IntentRecord) async throws -> IntentRecord {
        try await sendCreate(intent, answering: nil).intent
    }

    /// `sendCreate`, and with `answering` for a new intent, the API's answer rendered for the
    /// intent as recorded and stored with its Idempotency-Key in the same statement (an
    /// acceptance) or transaction (any other outcome); that body is returned (nil without
    /// `answering`).
    func sendCreate(
        _ intent: IntentRecord, answering: (Idempotency, @Sendable (IntentRecord) throws -> [UInt8])?
    ) async throws -> (intent: IntentRecord, answer: [UInt8]?) {
        guard let encoded = intent.createRequest else { return (intent, nil) }
        var log = logger
        log[metadataKey: "intent.id"] = "\(intent.id)"
        let outcome: Result<CreatePaymentResult, GatewayError>
        do {
            outcome = .success(try await gateway.create(encoded: encoded, partner: intent.partner))
        } catch {
            outcome = .failure(error)
        }
        // The usual case: the intent is as this request committed it, so the acceptance is one
        // row of a group statement, conditional on its version; if anything moved it meanwhile,
        // the locked path below.
        if intent.status == .created, case .success(.accepted(let txn, let url, let deadline)) = outcome {
            let stamp = Date()
            var acceptance = IntentStore.Acceptance(
                intent: intent, gatewayTransaction: txn, checkoutURL: url,
                expiresAt: Date(timeIntervalSince1970: TimeInterval(deadline.unixSeconds)), updatedAt: stamp, completion: nil)
            if let (idempotency, answer) = answering {
                // The answer renders the intent as the statement will leave it, stamped with the time it is given.
                acceptance.completion = .init(
                    apiKey: idempotency.apiKey, key: idempotency.key, status: 201, body: try answer(acceptance.accepted),
                    updatedAt: stamp)
            }
            if let accepted = try await acceptances.submit(acceptance).get() {
                return (accepted, acceptance.completion?.body)
            }
        }
        // Otherwise the intent is recorded under its lock — and with `answering`, the key's answer
        // is stored in the same transaction, so a retry with the same key sees either no answer
        // (and waits) or this one, never an answer of its own.
        return try await database.withTransaction { db in
            guard let current = try await IntentStore.intent(id: intent.id, forUpdate: true, on: db) else { return (intent, nil) }
            let recorded: IntentRecord
            // A callback may already have moved it on; then there is nothing to record here.
            if current.status != .created && current.status != .unknown {
                recorded = current
            } else {
                switch outcome {
                case .success(.accepted(let txn, let url, let deadline)):
                    recorded = try await IntentStore.transition(
                        current, to: .pending, event: .gatewayAccepted,
                        changes: .init(gatewayTransaction: txn, checkoutURL: url, expiresAt: Date(timeIntervalSince1970: TimeInterval(deadline.unixSeconds))),
                        source: .gatewayReply, on: db)
                case .success(.rejected(let rejection)):
                    log.warning("gateway refused a payment", metadata: ["gateway.rejection": "\(rejection)"])
                    recorded = try await IntentStore.transition(
                        current, to: .failed, event: .gatewayRejected, source: .gatewayReply,
                        detail: ["rejection": "\(rejection)"], on: db)
                case .failure(let error):
                    log.warning("gateway create without a definite answer", metadata: ["gateway.error": "\(error.kind.rawValue)"])
                    recorded = current.status == .created
                        ? try await IntentStore.transition(
                            current, to: .unknown, event: .gatewayUnreachable, source: .gatewayReply,
                            detail: ["error": error.kind.rawValue], on: db)
                        : current
                }
            }
            guard let (idempotency, answer) = answering else { return (recorded, nil) }
            let body = try answer(recorded)
            try await IdempotencyStore.complete(apiKey: idempotency.apiKey, key: idempotency.key, status: 201, body: body, on: db)
            return (recorded, body)
        }
    }

    /// Asks the gateway about an intent that is still open and applies what it says (the
    /// return page's repair on read). Returns the intent as it now is; a failed query changes nothing.
    public func refresh(_ intent: IntentRecord) async throws -> IntentRecord {
        guard intent.status.isOpen, let report = await queryGateway(about: intent) else { return intent }
        if let resent = try await resendIfOnlyTheReplyWasLost(intent, report: report) { return resent }
        return try await applyLocked(report, to: intent)
    }

    /// An intent whose create reply never arrived (`created`, or `unknown` after a timeout) that
    /// the gateway reports as pending: the create did reach it, and its reply carried the checkout
    /// URL. Applying the query alone would leave the intent pending with no page to pay on, so the
    /// stored create is sent again instead — an identical create is answered with the original
    /// reply (§1), URL and deadline included. Nil when that is not the case.
    private func resendIfOnlyTheReplyWasLost(_ intent: IntentRecord, report: PaymentStatusReport) async throws -> IntentRecord? {
        guard intent.status == .created || intent.status == .unknown, intent.createRequest != nil,
              case .known(.pending) = report.status
        else { return nil }
        return try await sendCreate(intent)
    }

    /// The janitor's check of an open intent: the gateway's status is applied as a named
    /// correction. An intent the gateway has never heard of is sent again (its stored bytes) while
    /// its payment window is open, and failed once it has closed — the money cannot have moved.
    public func reconcileWithGateway(_ intent: IntentRecord) async throws -> IntentRecord {
        guard intent.status.isOpen, let report = await queryGateway(about: intent) else { return intent }
        if case .notFound = report.status, intent.status != .pending {
            let age = Date().timeIntervalSince(intent.createdAt)
            if age < TimeInterval(effectiveWindow.components.seconds) {
                return try await sendCreate(intent)
            }
            return try await database.withTransaction { db in
                guard let current = try await IntentStore.intent(id: intent.id, forUpdate: true, on: db), current.status.isOpen,
                      current.status != .pending
                else { return intent }
                return try await IntentStore.transition(
                    current, to: .failed, event: .gatewayNotFound, source: .query, detail: ["reason": "gateway has no such transaction"],
                    on: db)
            }
        }
        if let resent = try await resendIfOnlyTheReplyWasLost(intent, report: report) { return resent }
        return try await applyLocked(report, to: intent)
    }

    /// The gateway's status of `intent`, or nil (logged) when the query failed: a failed query
    /// tells nothing and changes nothing.
    private func queryGateway(about intent: IntentRecord) async -> PaymentStatusReport? {
        do {
            return try await gateway.query(reference: intent.reference, partner: intent.partner)
        } catch {
            logger.info("gateway query failed", metadata: ["intent.id": "\(intent.id)", "gateway.error": "\(error.kind.rawValue)"])
            return nil
        }
    }

    /// Applies a query's report to the intent as it is under its lock.
    private func applyLocked(_ report: PaymentStatusReport, to intent: IntentRecord) async throws -> IntentRecord {
        try await database.withTransaction { db in
            guard let current = try await IntentStore.intent(id: intent.id, forUpdate: true, on: db) else { return intent }
            return try await OutcomeApplier(db: db).apply(report: report, to: current)
        }
    }

    /// Marks an intent the schedule could not settle for a person to decide.
    func requireManualReview(_ intent: IntentRecord) async throws {
        try await database.withTransaction { db in
            guard let current = try await IntentStore.intent(id: intent.id, forUpdate: true, on: db), current.status.isOpen else { return }
            let flagged = try await IntentStore.transition(
                current, to: current.status, event: .manualReviewRequired,
                changes: .init(review: ReviewReason.unresolvedAfterQueries.rawValue), source: .system, on: db)
            try await IntentStore.recordCheck(intentID: current.id, checksDone: Int(Int16.max), nextAfterCreation: nil, on: db)
            try await OutcomeApplier(db: db).openException(.unresolvedIntent, intent: flagged, messageID: nil, detail: [:])
        }
    }
}

/// Applies gateway-reported outcomes to a locked intent inside the caller's transaction: the
/// state change and its event, the dossier's coverage, and any exception a person must see.
struct OutcomeApplier {
    let db: PostgresConnection

    struct Applied {
        var intent: IntentRecord
        var changed: Bool
        var conflicting: Bool
    }

    /// Applies `outcome` from `source`; `messageID` names the message that said so.
    func apply(
        outcome: PaymentOutcome, source: OutcomeSource, to intent: IntentRecord, gatewayTransaction: String?,
        bankCode: String?, occurredAt: VietnamTime?, messageID: Int64?, detail: [String: String] = [:]
    ) async throws -> Applied {
        let eventSource: EventSource = switch source {
        case .callback: .callback
        case .query: .query
        case .settlement: .settlement
        }
        switch IntentStateMachine.decide(current: intent.status, outcome: outcome, source: source) {
        case .apply(let to, let event, let review):
            let paidAt = to == .succeeded ? occurredAt.map { Date(timeIntervalSince1970: TimeInterval($0.unixSeconds)) } : nil
            let updated = try await IntentStore.transition(
                intent, to: to, event: event,
                changes: .init(gatewayTransaction: gatewayTransaction, bankCode: bankCode, paidAt: paidAt, review: review?.rawValue),
                source: eventSource, messageID: messageID, detail: detail, on: db)
            let dossier = try await DossierStore.recomputePaid(dossierID: intent.dossierID, on: db)
            if let review {
                try await openException(ExceptionKind(review), intent: updated, messageID: messageID, detail: detail)
            }
            if dossier.status == .overpaid && to == .succeeded {
                try await openException(.duplicatePayment, intent: updated, messageID: messageID, detail: ["refund_needed": "true"])
            }
            if dossier.before == .awaitingPayment && dossier.status != .awaitingPayment {
                try await notifyPaid(dossier, intent: updated)
            }
            return Applied(intent: updated, changed: true, conflicting: false)
        case .alreadyApplied, .stillPending:
            return Applied(intent: intent, changed: false, conflicting: false)
        case .conflicting:
            let flagged = try await flag(intent, reason: .conflictingOutcome, source: eventSource, messageID: messageID, detail: detail)
            return Applied(intent: flagged, changed: false, conflicting: true)
        }
    }

    /// Applies a query report (§4) to a locked intent.
    func apply(report: PaymentStatusReport, to intent: IntentRecord) async throws -> IntentRecord {
        switch report.status {
        case .known(let outcome):
            if let amount = report.amount, amount != intent.amount, outcome == .succeeded {
                return try await flag(intent, reason: .amountMismatch, source: .query, messageID: nil,
                                      detail: ["reported_amount": "\(amount.dong)"])
            }
            return try await apply(
                outcome: outcome, source: .query, to: intent, gatewayTransaction: report.gatewayTransaction,
                bankCode: report.bankCode, occurredAt: report.occurredAt, messageID: nil).intent
        case .refundInProgress, .refundRejected:
            return try await apply(
                outcome: .succeeded, source: .query, to: intent, gatewayTransaction: report.gatewayTransaction,
                bankCode: report.bankCode, occurredAt: report.occurredAt, messageID: nil).intent
        case .notFound:
            return intent
        case .unrecognized(let code):
            return try await flag(intent, reason: .conflictingOutcome, source: .query, messageID: nil, detail: ["status_code": code])
        }
    }

    /// Writes the "dossier paid" notification for the one-stop system in this transaction.
    func notifyPaid(_ dossier: DossierStore.Coverage, intent: IntentRecord) async throws {
        let notification = try Self.paidNotification(dossier, intent: intent)
        try await OutboxStore.enqueue(
            agencyID: notification.agencyID, dossierID: notification.dossierID, intentID: notification.intentID,
            event: notification.event, messageID: notification.messageID, payload: notification.payload, on: db)
    }

    /// The "dossier paid" notification for `intent` having paid `dossier`, ready to enqueue.
    static func paidNotification(_ dossier: DossierStore.Coverage, intent: IntentRecord) throws -> OutboxStore.NewNotification {
        // A UUID's 32 hex digits without dashes (formatting and stripping a uuidString costs more).
        let messageID = "ntf_" + withUnsafeBytes(of: SecureRandom.uuid().uuid) { Hex.encode($0) }
        let payload = DossierPaidNotification(
            type: "dossier.paid", id: messageID, dossierCode: dossier.code.rawValue, status: dossier.status.rawValue,
            amountDue: dossier.amountDue.dong, amountPaid: dossier.paid.dong,
            payment: .init(
                intentId: intent.id.uuidString.lowercased(), reference: intent.reference.rawValue,
                gatewayTransaction: intent.gatewayTransaction, amount: intent.amount.dong, bankCode: intent.bankCode,
                paidAt: intent.paidAt))
        return OutboxStore.NewNotification(
            agencyID: dossier.agencyID, dossierID: intent.dossierID, intentID: intent.id, event: "dossier.paid",
            messageID: messageID, payload: payload.encoded())
    }

    /// Marks an intent for review without changing its status, with an event and an exception.
    func flag(
        _ intent: IntentRecord, reason: ReviewReason, source: EventSource, messageID: Int64?, detail: [String: String]
    ) async throws -> IntentRecord {
        let updated = try await IntentStore.transition(
            intent, to: intent.status, event: .flagged, changes: .init(review: reason.rawValue), source: source,
            messageID: messageID, detail: detail.merging(["reason": reason.rawValue]) { a, _ in a }, on: db)
        try await openException(ExceptionKind(reason), intent: updated, messageID: messageID, detail: detail)
        return updated
    }

    func openException(_ kind: ExceptionKind, intent: IntentRecord, messageID: Int64?, detail: [String: String]) async throws {
        let agency = try await DossierStore.agencyID(dossierID: intent.dossierID, on: db)
        try await ExceptionStore.open(
            kind, agencyID: agency, dossierID: intent.dossierID, intentID: intent.id, messageID: messageID,
            amount: intent.amount, detail: detail, on: db)
    }
}

/// The body of a "dossier paid" notification to the one-stop system.
struct DossierPaidNotification: Encodable {
    var type: String
    var id: String
    var dossierCode: String
    var status: String
    var amountDue: Int64
    var amountPaid: Int64
    var payment: Payment

    struct Payment: Encodable {
        var intentId: String
        var reference: String
        var gatewayTransaction: String?
        var amount: Int64
        var bankCode: String?
        var paidAt: Date?
    }

    /// The bytes `JSONCoding.encode` makes of this value (keys sorted, absent optionals left out,
    /// dates as ISO 8601 seconds), written directly: one is made for every paid dossier, and
    /// `JSONEncoder` was a tenth of a callback's cost.
    func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: 384)
        json.beginObject()
        json.field("amountDue", amountDue)
        json.field("amountPaid", amountPaid)
        json.field("dossierCode", dossierCode)
        json.field("id", id)
        json.key("payment")
        json.beginObject()
        json.field("amount", payment.amount)
        json.field("bankCode", payment.bankCode)
        json.field("gatewayTransaction", payment.gatewayTransaction)
        json.field("intentId", payment.intentId)
        json.field("paidAt", payment.paidAt.map(JSONBytes.iso8601))
        json.field("reference", payment.reference)
        json.endObject()
        json.field("status", status)
        json.field("type", type)
        json.endObject()
        return json.bytes
    }
}

/// Dates written the way `JSONCoding`'s encoder writes them, for hand-written encoders.
enum JSONBytes {
    /// `yyyy-MM-ddTHH:mm:ssZ` in UTC, fractions of a second dropped, as `.iso8601` encodes dates.
    static func iso8601(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let time = seconds - days * 86_400
        let date = CivilDate(daysSinceEpoch: days)
        let (year, month, day) = (Int64(date.year), Int64(date.month), Int64(date.day))
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let yearText = String(year)
        return String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText + "-" + two(month) + "-" + two(day)
            + "T" + two(time / 3600) + ":" + two(time / 60 % 60) + ":" + two(time % 60) + "Z"
    }
}
