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

            var answers: [CallbackAnswer?] = []
            var replay: [Int] = []
            for (index, item) in batch.enumerated() {
                let key = "\(item.partner.rawValue)/\(item.webhookID)"
                if let final = finals[key] {
                    answers.append(CallbackAnswer(code: final.code, body: final.body))
                    continue
                }
                var step = Step(item: item, db: db, notifications: notifications, intents: intents[item.partner] ?? [:])
                let outcome = try await step.run()
                if let intent = step.updatedIntent { intents[item.partner, default: [:]][intent.reference.rawValue] = intent }
                switch outcome {
                case .answered(let answer, let isFinal):
                    if isFinal { finals[key] = (answer.code, answer.body) }
                    answers.append(answer)
                case .replayAfterCommit:
                    answers.append(nil)
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

/// Gathers callbacks arriving concurrently into batches, so that many are durably committed by
/// one transaction (group commit) while each is still answered only after its own commit. At
/// low load a batch is a single callback and adds no delay; under load, callbacks that arrive
/// while a batch commits form the next one.
actor CallbackBatcher {
    private struct Waiting {
        var callback: InboundCallback
        var continuation: CheckedContinuation<CallbackAnswer, Never>
    }

    private let processor: CallbackProcessor
    private let maxBatch: Int
    private let maxConcurrentBatches: Int
    private var queue: [Waiting] = []
    private var running = 0

    init(processor: CallbackProcessor, maxBatch: Int, maxConcurrentBatches: Int) {
        self.processor = processor
        self.maxBatch = max(1, maxBatch)
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
    }

    func submit(_ callback: InboundCallback) async -> CallbackAnswer {
        await withCheckedContinuation { continuation in
            queue.append(Waiting(callback: callback, continuation: continuation))
            if running < maxConcurrentBatches {
                running += 1
                Task { await self.drain() }
            }
        }
    }

    private func take() -> [Waiting]? {
        guard !queue.isEmpty else {
            running -= 1
            return nil
        }
        let count = min(maxBatch, queue.count)
        let batch = Array(queue.prefix(count))
        queue.removeFirst(count)
        return batch
    }

    private func drain() async {
        while let batch = take() {
            let answers = await processor.process(batch.map(\.callback))
            for (waiting, answer) in zip(batch, answers) { waiting.continuation.resume(returning: answer) }
        }
    }
}
