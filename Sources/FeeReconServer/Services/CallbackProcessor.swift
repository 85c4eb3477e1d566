import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import PortalGateway
import Postgres

/// A verified callback waiting to be applied.
struct InboundCallback: Sendable {
    var partner: PartnerCode
    var webhookID: String
    /// Every request header, in order, as `[name, value]`.
    var headers: [[String]]
    var body: [UInt8]
    var decoded: PortalNotifications.Decoded
}

/// What a callback is answered with: the wire code and the exact body (stored for replay).
struct CallbackAnswer: Sendable {
    var code: String
    var body: [UInt8]
}

/// Applies verified callbacks (§3) in one transaction per batch: each message is stored raw with
/// the answer it gets, the intent and the dossier follow it, and every change writes its event.
/// Nothing is acknowledged before the commit. A repeated webhook-id with a final answer gets
/// that answer again, byte for byte, and changes nothing.
///
/// The common case — a payment result for a known pending intent that nothing else in the batch
/// touches — is applied for the whole batch at once, with the same few statements however many
/// there are; every other message (unknown reference, amount or transaction mismatch, unknown
/// code, refund result, conflicting outcome, several messages about one intent or dossier) goes
/// through `Step` one by one, in arrival order.
struct CallbackProcessor: Sendable {
    let database: PostgresClient
    let notifications: PortalNotifications
    let metrics: ServiceMetrics
    let logger: Logger

    func process(_ batch: [InboundCallback]) async -> [CallbackAnswer] {
        metrics.callbackBatch(size: batch.count)
        do {
            return try await apply(batch)
        } catch {
            logger.error("callback batch failed", metadata: ["batch.size": "\(batch.count)", "error": "\(error)"])
            guard batch.count > 1 else {
                if let refusal = error as? PostgresError, refusal.isDataRefusal, let kept = await keepRefused(batch[0], refusal) {
                    return [kept]
                }
                // 99 is not final: the gateway retries, and the retry is processed afresh.
                let failure = notifications.reply(.failure)
                return [CallbackAnswer(code: failure.code, body: failure.body)]
            }
            // Isolate the message that failed so the others still get their answers.
            var answers: [CallbackAnswer] = []
            for item in batch { answers.append(contentsOf: await process([item])) }
            return answers
        }
    }

    private func apply(_ batch: [InboundCallback]) async throws -> [CallbackAnswer] {
        let result: (answers: [CallbackAnswer?], replay: [Int]) = try await database.withTransaction { db in
            // Locking the intents first serialises every concurrent delivery of the same event,
            // so the final-answer lookup below sees whatever an earlier delivery committed.
            var intents: [PartnerCode: [String: IntentRecord]] = [:]
            for (partner, items) in Dictionary(grouping: batch, by: \.partner) {
                let references = Set(items.compactMap { item -> String? in
                    if case .notification(_, _, let reference) = item.decoded { return reference }
                    return nil
                })
                guard !references.isEmpty else { continue }
                let locked = try await IntentStore.intentsForUpdate(partner: partner, references: references.sorted(), on: db)
                intents[partner] = Dictionary(locked.map { ($0.reference.rawValue, $0) }, uniquingKeysWith: { a, _ in a })
            }
            var finals: [String: (code: String, body: [UInt8])] = [:]
            for (partner, items) in Dictionary(grouping: batch, by: \.partner) {
                for (id, answer) in try await InboundMessageStore.finalAnswers(
                    partner: partner, webhookIDs: Array(Set(items.map(\.webhookID))), on: db)
                {
                    finals["\(partner.rawValue)/\(id)"] = answer
                }
            }

            var answers = [CallbackAnswer?](repeating: nil, count: batch.count)
            var replay: [Int] = []
            let plan = BatchPlan(batch: batch, intents: intents, finals: finals)
            for (index, answer) in try await applyPlain(plan.plain, of: batch, on: db) { answers[index] = answer }
            for index in plan.oneByOne {
                let item = batch[index]
                let key = "\(item.partner.rawValue)/\(item.webhookID)"
                if let final = finals[key] {
                    answers[index] = CallbackAnswer(code: final.code, body: final.body)
                    continue
                }
                var step = Step(item: item, db: db, notifications: notifications, intents: intents[item.partner] ?? [:])
                let outcome = try await step.run()
                if let intent = step.updatedIntent { intents[item.partner, default: [:]][intent.reference.rawValue] = intent }
                switch outcome {
                case .answered(let answer, let isFinal):
                    if isFinal { finals[key] = (answer.code, answer.body) }
                    answers[index] = answer
                case .replayAfterCommit:
                    replay.append(index)
                }
            }
            return (answers, replay)
        }
        guard !result.replay.isEmpty else { return result.answers.map { $0! } }
        var answers = result.answers
        for index in result.replay {
            let item = batch[index]
            let stored = try await database.withConnection { db in
                try await InboundMessageStore.finalAnswer(partner: item.partner, webhookID: item.webhookID, on: db)
            }
            guard let stored else { throw CallbackRaceLost() }
            answers[index] = CallbackAnswer(code: stored.code, body: stored.body)
        }
        return answers.map { $0! }
    }

    struct CallbackRaceLost: Error {}

    /// A verified message that the database refuses to apply as it is — a value outside a
    /// column's domain, or a gateway transaction id already on another intent — would fail the
    /// same way on every retry. It is kept raw instead, without a reference or an intent (an
    /// orphan for reconciliation to show), and answered `03`, final: nothing the gateway said is
    /// lost, and it is not asked to resend forever. Nil if even that could not be stored.
    private func keepRefused(_ item: InboundCallback, _ refusal: PostgresError) async -> CallbackAnswer? {
        let reply = notifications.reply(.malformed("the database refused the message's data"))
        let type: String = switch item.decoded {
        case .notification(_, let type, _), .malformed(_, let type, _): type
        case .partnerMismatch: "unknown"
        }
        do {
            let answer: CallbackAnswer? = try await database.withTransaction { db in
                let id = try await InboundMessageStore.insert(
                    .init(
                        partner: item.partner, webhookID: item.webhookID, messageType: type, headers: item.headers, body: item.body,
                        reference: nil, intentID: nil, resultCode: reply.code, replyBody: reply.body),
                    on: db)
                if id != nil { return CallbackAnswer(code: reply.code, body: reply.body) }
                // Another delivery committed a final answer meanwhile: that one stands.
                return try await InboundMessageStore.finalAnswer(partner: item.partner, webhookID: item.webhookID, on: db)
                    .map { CallbackAnswer(code: $0.code, body: $0.body) }
            }
            logger.error("callback kept unapplied: the database refused its data", metadata: [
                "webhook.id": "\(item.webhookID)", "sqlstate": "\(refusal.sqlState ?? "")", "constraint": "\(refusal.constraintName ?? "")",
            ])
            return answer
        } catch {
            logger.error("refused callback could not be kept", metadata: ["webhook.id": "\(item.webhookID)", "error": "\(error)"])
            return nil
        }
    }

    /// A locked intent's dossier was not recomputed (the foreign key makes this impossible).
    struct MissingDossier: Error {
        var id: Int64
    }

    /// A payment result that needs nothing but the common path: its intent is known and locked,
    /// the amount and transaction agree, the outcome is a plain edge of the state graph (or was
    /// already applied), and nothing else in the batch touches its webhook-id, intent or dossier.
    struct PlainPayment {
        enum Change {
            case apply(to: IntentStatus, event: IntentEventKind)
            /// Already in that state: answered `02`, stored, nothing changes.
            case none
        }

        var index: Int
        var notice: PaymentResultNotice
        var messageType: String
        var intent: IntentRecord
        var change: Change
    }

    /// How a batch is applied: which messages replay a final answer committed earlier, which go
    /// through the set-based common path, and which are processed one by one, in order.
    struct BatchPlan {
        var plain: [PlainPayment] = []
        var oneByOne: [Int] = []

        init(batch: [InboundCallback], intents: [PartnerCode: [String: IntentRecord]], finals: [String: (code: String, body: [UInt8])]) {
            var keys: [String: Int] = [:]
            var intentUses: [UUID: Int] = [:]
            var dossierUses: [Int64: Int] = [:]
            for item in batch {
                keys["\(item.partner.rawValue)/\(item.webhookID)", default: 0] += 1
                if case .notification(.paymentResult(let notice), _, _) = item.decoded,
                   let intent = intents[item.partner]?[notice.reference.rawValue]
                {
                    intentUses[intent.id, default: 0] += 1
                    dossierUses[intent.dossierID, default: 0] += 1
                }
            }
            for (index, item) in batch.enumerated() {
                let key = "\(item.partner.rawValue)/\(item.webhookID)"
                guard finals[key] == nil, keys[key] == 1,
                      case .notification(.paymentResult(let notice), let type, _) = item.decoded,
                      let intent = intents[item.partner]?[notice.reference.rawValue],
                      intentUses[intent.id] == 1, dossierUses[intent.dossierID] == 1,
                      notice.amount == intent.amount,
                      intent.gatewayTransaction == nil || intent.gatewayTransaction == notice.gatewayTransaction,
                      case .known(let outcome) = notice.outcome
                else {
                    oneByOne.append(index)
                    continue
                }
                let change: PlainPayment.Change
                switch IntentStateMachine.decide(current: intent.status, outcome: outcome, source: .callback) {
                case .apply(let to, let event, .none): change = .apply(to: to, event: event)
                case .alreadyApplied: change = .none
                case .apply, .stillPending, .conflicting:
                    oneByOne.append(index)
                    continue
                }
                plain.append(PlainPayment(index: index, notice: notice, messageType: type, intent: intent, change: change))
            }
        }
    }

    /// Applies the batch's plain payment results with a fixed number of statements, whatever
    /// their count: their messages stored raw, their intents moved with one event each, their
    /// dossiers recomputed, "dossier paid" notifications written — the effects `Step` and
    /// `OutcomeApplier` have for each, in one pass. Returns each message's answer by batch index.
    private func applyPlain(
        _ items: [PlainPayment], of batch: [InboundCallback], on db: PostgresConnection
    ) async throws -> [(Int, CallbackAnswer)] {
        guard !items.isEmpty else { return [] }
        let replies = items.map { item in
            switch item.change {
            case .apply: notifications.reply(.applied)
            case .none: notifications.reply(.alreadyApplied)
            }
        }
        let messageIDs = try await InboundMessageStore.insert(
            many: zip(items, replies).map { item, reply in
                let callback = batch[item.index]
                return .init(
                    partner: callback.partner, webhookID: callback.webhookID, messageType: item.messageType,
                    headers: callback.headers, body: callback.body, reference: item.intent.reference.rawValue,
                    intentID: item.intent.id, resultCode: reply.code, replyBody: reply.body)
            },
            on: db)

        var transitions: [IntentStore.Transition] = []
        for (item, messageID) in zip(items, messageIDs) {
            // The intents are locked, so only a delivery outside the protocol can lose this race.
            guard let messageID else { throw CallbackRaceLost() }
            guard case .apply(let to, let event) = item.change else { continue }
            let notice = item.notice
            let paidAt = to == .succeeded ? Date(timeIntervalSince1970: TimeInterval(notice.occurredAt.unixSeconds)) : nil
            transitions.append(IntentStore.Transition(
                intent: item.intent, to: to, event: event,
                changes: .init(gatewayTransaction: notice.gatewayTransaction, bankCode: notice.bankCode, paidAt: paidAt),
                messageID: messageID, detail: ["gateway_txn": notice.gatewayTransaction, "attempt": "\(notice.attempt)"]))
        }
        let updated = try await IntentStore.transition(many: transitions, source: .callback, on: db)
        let coverage = try await DossierStore.recomputePaid(dossierIDs: updated.map(\.dossierID), on: db)
        var paid: [OutboxStore.NewNotification] = []
        for (transition, intent) in zip(transitions, updated) {
            guard let dossier = coverage[intent.dossierID] else { throw MissingDossier(id: intent.dossierID) }
            if dossier.status == .overpaid && transition.to == .succeeded {
                try await OutcomeApplier(db: db).openException(
                    .duplicatePayment, intent: intent, messageID: transition.messageID, detail: ["refund_needed": "true"])
            }
            if dossier.before == .awaitingPayment && dossier.status != .awaitingPayment {
                paid.append(try OutcomeApplier.paidNotification(dossier, intent: intent))
            }
        }
        try await OutboxStore.enqueue(many: paid, on: db)
        return zip(items, replies).map { item, reply in (item.index, CallbackAnswer(code: reply.code, body: reply.body)) }
    }

    /// One message's processing inside the batch transaction.
    private struct Step {
        let item: InboundCallback
        let db: PostgresConnection
        let notifications: PortalNotifications
        let intents: [String: IntentRecord]
        var updatedIntent: IntentRecord?

        init(item: InboundCallback, db: PostgresConnection, notifications: PortalNotifications, intents: [String: IntentRecord]) {
            self.item = item
            self.db = db
            self.notifications = notifications
            self.intents = intents
        }

        enum Outcome {
            case answered(CallbackAnswer, isFinal: Bool)
            /// Another delivery committed a final answer first; read it after commit.
            case replayAfterCommit
        }

        mutating func run() async throws -> Outcome {
            switch item.decoded {
            case .partnerMismatch:
                // Rejected before reaching here; answered without storing anything.
                let reply = notifications.rejectionReply
                return .answered(CallbackAnswer(code: reply.code, body: reply.body), isFinal: false)
            case .malformed(let reason, let type, let reference):
                return try await store(.malformed(reason), type: type, reference: reference, intent: nil)
            case .notification(.refundResult(let notice), let type, _):
                // No refund request of ours carries this id yet: kept for reconciliation.
                return try await store(.unknownReference, type: type, reference: notice.reference.rawValue, intent: nil)
            case .notification(.paymentResult(let notice), let type, _):
                return try await payment(notice, type: type)
            }
        }

        private mutating func payment(_ notice: PaymentResultNotice, type: String) async throws -> Outcome {
            guard let intent = intents[notice.reference.rawValue] else {
                return try await store(.unknownReference, type: type, reference: notice.reference.rawValue, intent: nil)
            }
            let applier = OutcomeApplier(db: db)
            let detail = ["gateway_txn": notice.gatewayTransaction, "attempt": "\(notice.attempt)"]

            if notice.amount != intent.amount {
                let (outcome, id) = try await storeReturningID(.amountMismatch, type: type, intent: intent)
                guard let id else { return outcome }
                updatedIntent = try await applier.flag(
                    intent, reason: .amountMismatch, source: .callback, messageID: id,
                    detail: detail.merging(["reported_amount": "\(notice.amount.dong)"]) { a, _ in a })
                return outcome
            }
            if let known = intent.gatewayTransaction, known != notice.gatewayTransaction {
                let (outcome, id) = try await storeReturningID(
                    .malformed("MaGiaoDich differs from the transaction of this reference"), type: type, intent: intent)
                guard let id else { return outcome }
                updatedIntent = try await applier.flag(
                    intent, reason: .conflictingOutcome, source: .callback, messageID: id,
                    detail: detail.merging(["known_gateway_txn": known]) { a, _ in a })
                return outcome
            }
            guard case .known(let outcome) = notice.outcome else {
                let (answer, id) = try await storeReturningID(.malformed("unrecognised result code"), type: type, intent: intent)
                guard let id else { return answer }
                updatedIntent = try await applier.flag(intent, reason: .conflictingOutcome, source: .callback, messageID: id, detail: detail)
                return answer
            }

            let decision = IntentStateMachine.decide(current: intent.status, outcome: outcome, source: .callback)
            let answer: NotificationAnswer = switch decision {
            case .apply, .stillPending: .applied
            case .alreadyApplied, .conflicting: .alreadyApplied
            }
            let (reply, id) = try await storeReturningID(answer, type: type, intent: intent)
            guard let id else { return reply }
            let applied = try await applier.apply(
                outcome: outcome, source: .callback, to: intent, gatewayTransaction: notice.gatewayTransaction,
                bankCode: notice.bankCode, occurredAt: notice.occurredAt, messageID: id, detail: detail)
            updatedIntent = applied.intent
            return reply
        }

        private func store(_ answer: NotificationAnswer, type: String, reference: String?, intent: IntentRecord?) async throws -> Outcome {
            try await storeReturningID(answer, type: type, reference: reference, intent: intent).0
        }

        private func storeReturningID(
            _ answer: NotificationAnswer, type: String, reference: String? = nil, intent: IntentRecord?
        ) async throws -> (Outcome, Int64?) {
            let reply = notifications.reply(answer)
            let id = try await InboundMessageStore.insert(
                .init(
                    partner: item.partner, webhookID: item.webhookID, messageType: type, headers: item.headers, body: item.body,
                    reference: reference ?? intent?.reference.rawValue, intentID: intent?.id, resultCode: reply.code,
                    replyBody: reply.body),
                on: db)
            guard let id else {
                // Only a message without an intent can lose this race (intents are locked).
                guard intent == nil else { throw CallbackRaceLost() }
                return (.replayAfterCommit, nil)
            }
            return (.answered(CallbackAnswer(code: reply.code, body: reply.body), isFinal: reply.isFinal), id)
        }
    }
}

/// Callbacks are committed in groups: see `GroupCommit`.
typealias CallbackBatcher = GroupCommit<InboundCallback, CallbackAnswer>
