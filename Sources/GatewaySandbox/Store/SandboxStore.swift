import Logging
import Postgres

/// A payment as the sandbox records it.
struct PaymentRecord: Sendable, Equatable {
    var transactionID: String
    var partner: String
    var reference: String
    var request: String
    var amount: Int64
    var feeAmount: Int64
    var chargeAmount: Int64
    var currency: String
    var description: String
    var dossierCode: String
    var procedureCode: String
    var returnURL: String
    var notifyURL: String
    var bank: String
    var requestedAt: Int64
    var expiresAt: Int64
    var createdMilliseconds: Int64
    var status: PaymentStatus
    var outcome: PaymentOutcome?
    var outcomeAt: Int64?
    var laterStatus: PaymentStatus?
    var laterAt: Int64?
    var timerMilliseconds: Int64?
    var timerEvent: PaymentTimer?
    var eventsSent: Int64
}

/// What a payment's timer does when it fires.
enum PaymentTimer: Sendable, Equatable {
    /// The payment window closed: expire with a `11` callback.
    case expire
    /// Auto-pay mode chose this outcome.
    case auto(PaymentOutcome)
    /// Fault: reverse after the success callback.
    case reverse
    /// Fault: late success after the expiry callback.
    case lateSuccess

    var rawValue: String {
        switch self {
        case .expire: "expire"
        case .auto(let outcome): "auto:" + outcome.rawValue
        case .reverse: "reverse"
        case .lateSuccess: "late-success"
        }
    }

    init?(rawValue: String) {
        switch rawValue {
        case "expire": self = .expire
        case "reverse": self = .reverse
        case "late-success": self = .lateSuccess
        default:
            guard rawValue.hasPrefix("auto:"), let outcome = PaymentOutcome(rawValue: String(rawValue.dropFirst(5))) else {
                return nil
            }
            self = .auto(outcome)
        }
    }
}

/// The new state of a payment after an event, and the callbacks it sends.
struct PaymentChange: Sendable {
    var record: PaymentRecord
    var callbacks: [NewCallback]
}

/// A refund as the sandbox records it, with what the callback and settlement need of its payment.
struct RefundRecord: Sendable, Equatable {
    var refundID: String
    var partner: String
    var requestID: String
    var transactionID: String
    var amount: Int64
    var status: RefundStatus
    var dueMilliseconds: Int64?
    var dueStatus: RefundStatus?
    var outcomeAt: Int64?
    var createdMilliseconds: Int64
}

/// A callback event to deliver, with the fault decisions already taken.
struct NewCallback: Sendable, Equatable {
    enum State: String, Sendable { case pending, delivered, failed, dropped }

    var webhookID: String
    var partner: String
    var transactionID: String
    var reference: String
    var refundID: String?
    var kind: String
    var resultCode: String
    var url: String
    /// The body up to and including `"LanGui":`; each attempt appends its number and `}`.
    var bodyPrefix: String
    var state: State
    var maxAttempts: Int64
    var intervalMilliseconds: Int64
    var nextMilliseconds: Int64?
    var tamperFirst: Bool
    var faults: String
    var isDuplicate: Bool
    var createdMilliseconds: Int64
}

/// A callback claimed for one delivery attempt.
struct ClaimedCallback: Sendable {
    var id: Int64
    var webhookID: String
    var partner: String
    var url: String
    var bodyPrefix: String
    var attemptsMade: Int64
    var maxAttempts: Int64
    var intervalMilliseconds: Int64
    var tamperFirst: Bool
}

/// One delivery attempt's result.
struct CallbackAttempt: Sendable {
    var callbackID: Int64
    var attempt: Int64
    var webhookTimestamp: Int64
    var startedMilliseconds: Int64
    var latencyMilliseconds: Int64
    var httpStatus: Int64?
    var resultCode: String?
    var outcome: String
    var tampered: Bool
}

/// A stored final answer, replayed for a repeated `webhook-id`.
struct StoredReply: Sendable, Equatable {
    var status: Int
    var contentType: String
    var body: [UInt8]
}

/// What the create statement found.
enum CreateOutcome: Sendable, Equatable {
    /// The `webhook-id` was answered before: this is that answer.
    case replayed(StoredReply)
    /// The payment was inserted; the reply is the new payment's.
    case created
    /// The reference existed with the same request: its original reply.
    case sameRequest([UInt8])
    /// The reference existed with a different request.
    case conflict
}

/// Every SQL statement of the sandbox, over its own database.
struct SandboxStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// Creates the schema if it is missing; concurrent starts wait on one advisory lock.
    func migrate() async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.execute("SELECT pg_advisory_xact_lock(\(SandboxSchema.lockKey))")
            try await connection.executeScript(PostgresQuery(unsafeSQL: SandboxSchema.sql))
        }
    }

    // MARK: - Replies

    /// The final answer remembered for `webhookID`, if any.
    func storedReply(partner: String, webhookID: String) async throws -> StoredReply? {
        let rows = try await client.query("""
            SELECT http_status, content_type, body FROM sandbox_replies
            WHERE partner = \(partner) AND webhook_id = \(webhookID)
            """, logger: logger)
        return try rows.first.map { row in
            let (status, type, body) = try row.decode((Int64, String, [UInt8]).self)
            return StoredReply(status: Int(status), contentType: type, body: body)
        }
    }

    /// Remembers `reply` as the final answer to `webhookID` unless one is already remembered, in
    /// which case that earlier answer is returned (and must be sent instead).
    func rememberReply(partner: String, webhookID: String, reply: StoredReply, now: Int64) async throws -> StoredReply? {
        let rows = try await client.query("""
            WITH prior AS (
                SELECT http_status, content_type, body FROM sandbox_replies
                WHERE partner = \(partner) AND webhook_id = \(webhookID)
            ), remembered AS (
                INSERT INTO sandbox_replies (partner, webhook_id, http_status, content_type, body, created_ms)
                SELECT \(partner), \(webhookID), \(Int64(reply.status)), \(reply.contentType), \(reply.body), \(now)
                WHERE NOT EXISTS (SELECT 1 FROM prior)
                ON CONFLICT DO NOTHING
            )
            SELECT http_status, content_type, body FROM prior
            """, logger: logger)
        return try rows.first.map { row in
            let (status, type, body) = try row.decode((Int64, String, [UInt8]).self)
            return StoredReply(status: Int(status), contentType: type, body: body)
        }
    }

    // MARK: - Create (§1)

    /// The whole create in one statement: replay by `webhook-id`, insert unless the reference
    /// exists, compare with an existing request, remember the answer. Throws a unique violation
    /// on `sandbox_payments_pkey` when the generated transaction id collides.
    func createPayment(
        _ p: PaymentRecord, reply: [UInt8], conflictReply: [UInt8], webhookID: String
    ) async throws -> CreateOutcome? {
        let rows = try await client.query("""
            WITH prior AS (
                SELECT http_status, content_type, body FROM sandbox_replies
                WHERE partner = \(p.partner) AND webhook_id = \(webhookID)
            ), existing AS (
                SELECT request = \(p.request) AS same, reply FROM sandbox_payments
                WHERE partner = \(p.partner) AND reference = \(p.reference)
            ), inserted AS (
                INSERT INTO sandbox_payments (
                    transaction_id, partner, reference, request, reply, amount, fee_amount, charge_amount,
                    currency, description, dossier_code, procedure_code, return_url, notify_url, bank,
                    requested_at, expires_at, created_ms, timer_ms, timer_event)
                SELECT \(p.transactionID), \(p.partner), \(p.reference), \(p.request), \(reply), \(p.amount),
                    \(p.feeAmount), \(p.chargeAmount), \(p.currency), \(p.description), \(p.dossierCode),
                    \(p.procedureCode), \(p.returnURL), \(p.notifyURL), \(p.bank), \(p.requestedAt),
                    \(p.expiresAt), \(p.createdMilliseconds), \(p.timerMilliseconds), \(p.timerEvent?.rawValue)
                WHERE NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM existing)
                ON CONFLICT (partner, reference) DO NOTHING
                RETURNING 1
            ), answer AS (
                SELECT 1::bigint AS source, http_status, content_type, body FROM prior
                UNION ALL
                SELECT 2, 200, 'application/json', \(reply) FROM inserted
                UNION ALL
                SELECT CASE WHEN same THEN 3 ELSE 4 END, CASE WHEN same THEN 200 ELSE 409 END, 'application/json',
                    CASE WHEN same THEN reply ELSE \(conflictReply) END
                FROM existing WHERE NOT EXISTS (SELECT 1 FROM prior)
            ), remembered AS (
                INSERT INTO sandbox_replies (partner, webhook_id, http_status, content_type, body, created_ms)
                SELECT \(p.partner), \(webhookID), http_status, content_type, body, \(p.createdMilliseconds)
                FROM answer WHERE source <> 1
                ON CONFLICT DO NOTHING
            )
            SELECT source, http_status, content_type, body FROM answer
            """, logger: logger)
        guard let row = rows.first else { return nil }
        let (source, status, type, body) = try row.decode((Int64, Int64, String, [UInt8]).self)
        switch source {
        case 1: return .replayed(StoredReply(status: Int(status), contentType: type, body: body))
        case 2: return .created
        case 3: return .sameRequest(body)
        default: return .conflict
        }
    }

    // MARK: - Payments

    private static let paymentColumnNames = [
        "transaction_id", "partner", "reference", "request", "amount", "fee_amount", "charge_amount", "currency",
        "description", "dossier_code", "procedure_code", "return_url", "notify_url", "bank", "requested_at",
        "expires_at", "created_ms", "status", "outcome", "outcome_at", "later_status", "later_at", "timer_ms",
        "timer_event", "events_sent",
    ]
    private static let paymentColumns = columns(paymentColumnNames)

    private static func columns(_ names: [String], qualifiedBy table: String? = nil) -> String {
        names.map { (table.map { t in t + "." } ?? "") + $0 }.joined(separator: ", ")
    }

    private static func decodePayment(_ row: PostgresRow) throws -> PaymentRecord {
        try decodePayment(row, offset: 0)
    }

    /// Reads the payment columns starting at column `offset`.
    private static func decodePayment(_ row: PostgresRow, offset: Int) throws -> PaymentRecord {
        func text(_ i: Int) throws -> String { try row.decode(column: offset + i, as: String.self) }
        func int(_ i: Int) throws -> Int64 { try row.decode(column: offset + i, as: Int64.self) }
        func optionalText(_ i: Int) throws -> String? { try row.decode(column: offset + i, as: String?.self) }
        func optionalInt(_ i: Int) throws -> Int64? { try row.decode(column: offset + i, as: Int64?.self) }
        guard let status = PaymentStatus(rawValue: try text(17)) else { throw SandboxStoreError.corruptRow }
        return PaymentRecord(
            transactionID: try text(0), partner: try text(1), reference: try text(2), request: try text(3),
            amount: try int(4), feeAmount: try int(5), chargeAmount: try int(6), currency: try text(7),
            description: try text(8), dossierCode: try text(9), procedureCode: try text(10), returnURL: try text(11),
            notifyURL: try text(12), bank: try text(13), requestedAt: try int(14), expiresAt: try int(15),
            createdMilliseconds: try int(16), status: status,
            outcome: try optionalText(18).flatMap(PaymentOutcome.init(rawValue:)), outcomeAt: try optionalInt(19),
            laterStatus: try optionalText(20).flatMap(PaymentStatus.init(rawValue:)), laterAt: try optionalInt(21),
            timerMilliseconds: try optionalInt(22), timerEvent: try optionalText(23).flatMap(PaymentTimer.init(rawValue:)),
            eventsSent: try int(24))
    }

    /// A payment and the total of its completed refunds, by partner and reference.
    func payment(partner: String, reference: String) async throws -> (PaymentRecord, Int64)? {
        let rows = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns)),
                (SELECT COALESCE(SUM(amount), 0)::bigint FROM sandbox_refunds r
                 WHERE r.transaction_id = p.transaction_id AND r.status = 'completed')
            FROM sandbox_payments p WHERE partner = \(partner) AND reference = \(reference)
            """, logger: logger)
        guard let row = rows.first else { return nil }
        return (try Self.decodePayment(row), try row.decode(column: 25, as: Int64.self))
    }

    /// A payment by its transaction id.
    func payment(transactionID: String) async throws -> PaymentRecord? {
        let rows = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns))
            FROM sandbox_payments WHERE transaction_id = \(transactionID)
            """, logger: logger)
        return try rows.first.map(Self.decodePayment)
    }

    /// The original create request of a payment (canonical JSON), for the hosted page.
    func paymentRequest(transactionID: String) async throws -> String? {
        let rows = try await client.query(
            "SELECT request FROM sandbox_payments WHERE transaction_id = \(transactionID)", logger: logger)
        return try rows.first?.decode(String.self)
    }

    /// Locks one payment, lets `change` decide its new state, and writes it with its callbacks.
    /// Returns the record as it ends up (unchanged when `change` returns nil), or nil if unknown.
    func updatePayment(
        transactionID: String, _ change: (PaymentRecord) throws -> PaymentChange?
    ) async throws -> (PaymentRecord, changed: Bool)? {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns))
                FROM sandbox_payments WHERE transaction_id = \(transactionID) FOR UPDATE
                """, logger: logger)
            guard let row = rows.first else { return nil }
            let record = try Self.decodePayment(row)
            guard let update = try change(record) else { return (record, false) }
            try await Self.write([update], on: connection, logger: logger)
            return (update.record, true)
        }
    }

    /// Claims payments whose timer is due (skipping rows others hold), applies `change` to each
    /// and writes the results in one transaction. Returns how many were claimed.
    func processDuePayments(now: Int64, limit: Int, _ change: (PaymentRecord) throws -> PaymentChange) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns))
                FROM sandbox_payments WHERE timer_ms <= \(now)
                ORDER BY timer_ms LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            guard !rows.isEmpty else { return 0 }
            var updates: [PaymentChange] = []
            updates.reserveCapacity(rows.count)
            for row in rows { updates.append(try change(try Self.decodePayment(row))) }
            try await Self.write(updates, on: connection, logger: logger)
            return rows.count
        }
    }

    /// The earliest payment timer, if any.
    func nextPaymentTimer() async throws -> Int64? {
        let rows = try await client.query("SELECT min(timer_ms) FROM sandbox_payments WHERE timer_ms IS NOT NULL", logger: logger)
        return try rows.first?.decode(Int64?.self)
    }

    private static func write(_ updates: [PaymentChange], on connection: PostgresConnection, logger: Logger) async throws {
        let r = updates.map(\.record)
        let ids = r.map(\.transactionID)
        let statuses = r.map(\.status.rawValue)
        let outcomes = r.map { $0.outcome?.rawValue ?? "" }
        let outcomeAt = r.map { $0.outcomeAt ?? -1 }
        let laterStatuses = r.map { $0.laterStatus?.rawValue ?? "" }
        let laterAt = r.map { $0.laterAt ?? -1 }
        let timers = r.map { $0.timerMilliseconds ?? -1 }
        let timerEvents = r.map { $0.timerEvent?.rawValue ?? "" }
        let events = r.map(\.eventsSent)
        try await connection.execute("""
            UPDATE sandbox_payments p SET
                status = u.status, outcome = NULLIF(u.outcome, ''), outcome_at = NULLIF(u.outcome_at, -1),
                later_status = NULLIF(u.later_status, ''), later_at = NULLIF(u.later_at, -1),
                timer_ms = NULLIF(u.timer_ms, -1), timer_event = NULLIF(u.timer_event, ''), events_sent = u.events_sent
            FROM unnest(\(ids)::text[], \(statuses)::text[], \(outcomes)::text[], \(outcomeAt)::bigint[],
                        \(laterStatuses)::text[], \(laterAt)::bigint[], \(timers)::bigint[], \(timerEvents)::text[],
                        \(events)::bigint[])
                AS u(transaction_id, status, outcome, outcome_at, later_status, later_at, timer_ms, timer_event, events_sent)
            WHERE p.transaction_id = u.transaction_id
            """, logger: logger)
        try await insertCallbacks(updates.flatMap(\.callbacks), on: connection, logger: logger)
    }

    private static func insertCallbacks(_ callbacks: [NewCallback], on connection: PostgresConnection, logger: Logger) async throws {
        guard !callbacks.isEmpty else { return }
        let c = callbacks
        try await connection.execute("""
            INSERT INTO sandbox_callbacks (
                webhook_id, partner, transaction_id, reference, refund_id, kind, result_code, url, body_prefix, state,
                max_attempts, interval_ms, next_ms, tamper_first, faults, is_duplicate, created_ms)
            SELECT webhook_id, partner, transaction_id, reference, NULLIF(refund_id, ''), kind, result_code, url,
                body_prefix, state, max_attempts, interval_ms, NULLIF(next_ms, -1), tamper_first, faults, is_duplicate,
                created_ms
            FROM unnest(\(c.map(\.webhookID))::text[], \(c.map(\.partner))::text[], \(c.map(\.transactionID))::text[],
                        \(c.map(\.reference))::text[], \(c.map { $0.refundID ?? "" })::text[], \(c.map(\.kind))::text[],
                        \(c.map(\.resultCode))::text[], \(c.map(\.url))::text[], \(c.map(\.bodyPrefix))::text[],
                        \(c.map(\.state.rawValue))::text[], \(c.map(\.maxAttempts))::bigint[],
                        \(c.map(\.intervalMilliseconds))::bigint[], \(c.map { $0.nextMilliseconds ?? -1 })::bigint[],
                        \(c.map(\.tamperFirst))::boolean[], \(c.map(\.faults))::text[], \(c.map(\.isDuplicate))::boolean[],
                        \(c.map(\.createdMilliseconds))::bigint[])
                AS u(webhook_id, partner, transaction_id, reference, refund_id, kind, result_code, url, body_prefix, state,
                     max_attempts, interval_ms, next_ms, tamper_first, faults, is_duplicate, created_ms)
            """, logger: logger)
    }

    // MARK: - Refunds (§5)

    private static let refundColumnNames = [
        "refund_id", "partner", "request_id", "transaction_id", "amount", "status", "due_ms", "due_status",
        "outcome_at", "created_ms",
    ]
    private static let refundColumns = columns(refundColumnNames)

    private static func decodeRefund(_ row: PostgresRow, offset: Int = 0) throws -> RefundRecord {
        func text(_ i: Int) throws -> String { try row.decode(column: offset + i, as: String.self) }
        guard let status = RefundStatus(rawValue: try text(5)) else { throw SandboxStoreError.corruptRow }
        return RefundRecord(
            refundID: try text(0), partner: try text(1), requestID: try text(2), transactionID: try text(3),
            amount: try row.decode(column: offset + 4, as: Int64.self), status: status,
            dueMilliseconds: try row.decode(column: offset + 6, as: Int64?.self),
            dueStatus: try row.decode(column: offset + 7, as: String?.self).flatMap(RefundStatus.init(rawValue:)),
            outcomeAt: try row.decode(column: offset + 8, as: Int64?.self),
            createdMilliseconds: try row.decode(column: offset + 9, as: Int64.self))
    }

    /// What a refund request found, decided inside the refund transaction.
    enum RefundDecision: Sendable {
        /// Insert this refund and answer 00 with `reply`.
        case accept(RefundRecord, kind: String, officer: String, reason: String, requestedAt: Int64, reply: [UInt8])
        /// Answer with this code (remembered when final).
        case reject(ResultCode, detail: String?)
    }

    /// The §5 refund in one transaction: replay by `webhook-id`, idempotency by `MaYeuCau`, then
    /// `decide` with the locked payment and the sum of its refunds that are not rejected.
    func refund(
        _ request: RefundRequest, webhookID: String, now: Int64,
        decide: (PaymentRecord?, _ activeRefunds: Int64) throws -> RefundDecision
    ) async throws -> StoredReply {
        try await client.withTransaction(logger: logger) { connection in
            let prior = try await connection.query("""
                SELECT http_status, content_type, body FROM sandbox_replies
                WHERE partner = \(request.partner) AND webhook_id = \(webhookID)
                """, logger: logger)
            if let row = prior.first {
                let (status, type, body) = try row.decode((Int64, String, [UInt8]).self)
                return StoredReply(status: Int(status), contentType: type, body: body)
            }
            let reply: StoredReply
            let existing = try await connection.query("""
                SELECT request = \(request.canonical), reply FROM sandbox_refunds
                WHERE partner = \(request.partner) AND request_id = \(request.requestID)
                """, logger: logger)
            if let row = existing.first {
                let (same, body) = try row.decode((Bool, [UInt8]).self)
                reply = same
                    ? StoredReply(status: 200, contentType: "application/json", body: body)
                    : StoredReply(status: 409, contentType: "application/json", body: ReplyBody.error(.conflictingDuplicate))
            } else {
                let rows = try await connection.query("""
                    SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns)),
                        (SELECT COALESCE(SUM(amount), 0)::bigint FROM sandbox_refunds r
                         WHERE r.transaction_id = p.transaction_id AND r.status <> 'rejected')
                    FROM sandbox_payments p
                    WHERE transaction_id = \(request.transactionID) AND partner = \(request.partner)
                    FOR UPDATE
                    """, logger: logger)
                let payment = try rows.first.map(Self.decodePayment)
                let active = try rows.first?.decode(column: 25, as: Int64.self) ?? 0
                switch try decide(payment, active) {
                case .reject(let code, let detail):
                    reply = StoredReply(status: code.httpStatus, contentType: "application/json", body: ReplyBody.error(code, detail: detail))
                    guard code.isFinalAnswer else { return reply }
                case .accept(let refund, let kind, let officer, let reason, let requestedAt, let body):
                    reply = StoredReply(status: 200, contentType: "application/json", body: body)
                    try await connection.execute("""
                        INSERT INTO sandbox_refunds (
                            refund_id, partner, request_id, transaction_id, request, reply, kind, amount, officer,
                            reason, requested_at, created_ms, status, due_ms, due_status)
                        VALUES (\(refund.refundID), \(refund.partner), \(refund.requestID), \(refund.transactionID),
                            \(request.canonical), \(body), \(kind), \(refund.amount), \(officer), \(reason), \(requestedAt),
                            \(refund.createdMilliseconds), 'pending', \(refund.dueMilliseconds), \(refund.dueStatus?.rawValue))
                        """, logger: logger)
                }
            }
            try await connection.execute("""
                INSERT INTO sandbox_replies (partner, webhook_id, http_status, content_type, body, created_ms)
                VALUES (\(request.partner), \(webhookID), \(Int64(reply.status)), \(reply.contentType), \(reply.body), \(now))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return reply
        }
    }

    /// Locks refunds (one by id, or those due) with their payments, lets `change` decide each
    /// new state and callbacks, and writes them. Returns the refunds as they end up.
    func updateRefunds(
        refundID: String?, dueBefore now: Int64, limit: Int,
        _ change: (RefundRecord, PaymentRecord) throws -> (RefundRecord, [NewCallback])?
    ) async throws -> [(RefundRecord, changed: Bool)] {
        try await client.withTransaction(logger: logger) { connection in
            let selection: PostgresQuery = if let refundID {
                "r.refund_id = \(refundID)"
            } else {
                "r.status = 'pending' AND r.due_ms <= \(now)"
            }
            let rows = try await connection.query("""
                SELECT \(fragment: PostgresQuery(unsafeSQL: Self.columns(Self.refundColumnNames, qualifiedBy: "r"))),
                    \(fragment: PostgresQuery(unsafeSQL: Self.columns(Self.paymentColumnNames, qualifiedBy: "p")))
                FROM sandbox_refunds r JOIN sandbox_payments p USING (transaction_id)
                WHERE \(fragment: selection)
                ORDER BY r.due_ms LIMIT \(Int64(limit))
                FOR UPDATE OF r SKIP LOCKED
                """, logger: logger)
            var results: [(RefundRecord, changed: Bool)] = []
            var callbacks: [NewCallback] = []
            var changed: [RefundRecord] = []
            for row in rows {
                let refund = try Self.decodeRefund(row)
                let payment = try Self.decodePayment(row, offset: 10)
                if let (updated, newCallbacks) = try change(refund, payment) {
                    changed.append(updated)
                    callbacks += newCallbacks
                    results.append((updated, true))
                } else {
                    results.append((refund, false))
                }
            }
            if !changed.isEmpty {
                try await connection.execute("""
                    UPDATE sandbox_refunds r SET status = u.status, outcome_at = NULLIF(u.outcome_at, -1),
                        due_ms = NULLIF(u.due_ms, -1), due_status = NULLIF(u.due_status, '')
                    FROM unnest(\(changed.map(\.refundID))::text[], \(changed.map(\.status.rawValue))::text[],
                                \(changed.map { $0.outcomeAt ?? -1 })::bigint[], \(changed.map { $0.dueMilliseconds ?? -1 })::bigint[],
                                \(changed.map { $0.dueStatus?.rawValue ?? "" })::text[])
                        AS u(refund_id, status, outcome_at, due_ms, due_status)
                    WHERE r.refund_id = u.refund_id
                    """, logger: logger)
                try await Self.insertCallbacks(callbacks, on: connection, logger: logger)
            }
            return results
        }
    }

    /// The earliest refund due time, if any.
    func nextRefundDue() async throws -> Int64? {
        let rows = try await client.query(
            "SELECT min(due_ms) FROM sandbox_refunds WHERE status = 'pending' AND due_ms IS NOT NULL", logger: logger)
        return try rows.first?.decode(Int64?.self)
    }

    // MARK: - Callbacks (§3)

    /// Claims up to `limit` due callbacks for one attempt each, leasing them until `leaseUntil`
    /// so another worker (or a restart) retries them only if this attempt never reports back.
    func claimCallbacks(now: Int64, limit: Int, leaseUntil: Int64) async throws -> [ClaimedCallback] {
        let rows = try await client.query("""
            UPDATE sandbox_callbacks SET next_ms = \(leaseUntil)
            WHERE id IN (
                SELECT id FROM sandbox_callbacks WHERE state = 'pending' AND next_ms <= \(now)
                ORDER BY next_ms LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
            RETURNING id, webhook_id, partner, url, body_prefix, attempts, max_attempts, interval_ms, tamper_first
            """, logger: logger)
        return try rows.map { row in
            let (id, webhookID, partner, url, prefix, attempts, maxAttempts, interval, tamper) =
                try row.decode((Int64, String, String, String, String, Int64, Int64, Int64, Bool).self)
            return ClaimedCallback(
                id: id, webhookID: webhookID, partner: partner, url: url, bodyPrefix: prefix, attemptsMade: attempts,
                maxAttempts: maxAttempts, intervalMilliseconds: interval, tamperFirst: tamper)
        }
    }

    /// Logs an attempt and moves the callback on: delivered, given up, or due again at `nextMilliseconds`.
    func recordAttempt(_ a: CallbackAttempt, state: NewCallback.State, nextMilliseconds: Int64?, now: Int64) async throws {
        let finished: Int64? = state == .pending ? nil : now
        try await client.execute("""
            WITH logged AS (
                INSERT INTO sandbox_callback_attempts (
                    callback_id, attempt, webhook_timestamp, started_ms, latency_ms, http_status, result_code, outcome, tampered)
                VALUES (\(a.callbackID), \(a.attempt), \(a.webhookTimestamp), \(a.startedMilliseconds), \(a.latencyMilliseconds),
                    \(a.httpStatus), \(a.resultCode), \(a.outcome), \(a.tampered))
            )
            UPDATE sandbox_callbacks SET attempts = \(a.attempt), state = \(state.rawValue), next_ms = \(nextMilliseconds),
                finished_ms = \(finished)
            WHERE id = \(a.callbackID)
            """, logger: logger)
    }

    /// The earliest pending callback time, if any.
    func nextCallbackDue() async throws -> Int64? {
        let rows = try await client.query("SELECT min(next_ms) FROM sandbox_callbacks WHERE state = 'pending'", logger: logger)
        return try rows.first?.decode(Int64?.self)
    }

    // MARK: - Settlement (§6)

    /// Payments of `partner` with a state change in [start, end) and refunds that ended then.
    func settlementData(partner: String, start: Int64, end: Int64) async throws -> ([PaymentRecord], [RefundRecord]) {
        let payments = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns)) FROM sandbox_payments
            WHERE partner = \(partner) AND (
                (outcome_at >= \(start) AND outcome_at < \(end)) OR (later_at >= \(start) AND later_at < \(end)))
            """, logger: logger)
        let refunds = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.refundColumns)) FROM sandbox_refunds
            WHERE partner = \(partner) AND status <> 'pending' AND outcome_at >= \(start) AND outcome_at < \(end)
            """, logger: logger)
        let paymentRecords = try payments.map(Self.decodePayment)
        var refundRecords = try refunds.map { try Self.decodeRefund($0) }
        refundRecords.sort { $0.refundID < $1.refundID }
        return (paymentRecords, refundRecords)
    }

    /// Payments by transaction id (for refund rows whose payment changed on another day).
    func payments(transactionIDs: [String]) async throws -> [PaymentRecord] {
        guard !transactionIDs.isEmpty else { return [] }
        let rows = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns)) FROM sandbox_payments
            WHERE transaction_id = ANY(\(transactionIDs)::text[])
            """, logger: logger)
        return try rows.map(Self.decodePayment)
    }

    // MARK: - Control API reads

    /// Payments in (partner, reference) order after a cursor, with their refunds.
    func truth(partner: String?, reference: String?, after: String?, limit: Int) async throws -> [(PaymentRecord, [RefundRecord])] {
        let rows = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.paymentColumns)) FROM sandbox_payments
            WHERE (\(partner)::text IS NULL OR partner = \(partner))
              AND (\(reference)::text IS NULL OR reference = \(reference))
              AND (\(after)::text IS NULL OR partner || '/' || reference > \(after))
            ORDER BY partner || '/' || reference LIMIT \(Int64(limit))
            """, logger: logger)
        let payments = try rows.map(Self.decodePayment)
        guard !payments.isEmpty else { return [] }
        let refundRows = try await client.query("""
            SELECT \(fragment: PostgresQuery(unsafeSQL: Self.refundColumns)) FROM sandbox_refunds
            WHERE transaction_id = ANY(\(payments.map(\.transactionID))::text[]) ORDER BY created_ms, refund_id
            """, logger: logger)
        var refunds: [String: [RefundRecord]] = [:]
        for row in refundRows {
            let refund = try Self.decodeRefund(row)
            refunds[refund.transactionID, default: []].append(refund)
        }
        return payments.map { ($0, refunds[$0.transactionID] ?? []) }
    }

    /// A refund by id.
    func refund(refundID: String) async throws -> RefundRecord? {
        let rows = try await client.query(
            "SELECT \(fragment: PostgresQuery(unsafeSQL: Self.refundColumns)) FROM sandbox_refunds WHERE refund_id = \(refundID)",
            logger: logger)
        return try rows.first.map { try Self.decodeRefund($0) }
    }

    /// A callback with its attempts, for the control API.
    struct CallbackView: Sendable {
        var id: Int64
        var webhookID: String
        var partner: String
        var transactionID: String
        var reference: String
        var refundID: String?
        var kind: String
        var resultCode: String
        var url: String
        var state: String
        var attempts: Int64
        var maxAttempts: Int64
        var nextMilliseconds: Int64?
        var faults: String
        var isDuplicate: Bool
        var createdMilliseconds: Int64
        var finishedMilliseconds: Int64?
        var attemptLog: [CallbackAttempt]
    }

    /// Callbacks (optionally of one payment or partner), oldest first, with every attempt.
    func callbacks(partner: String?, transactionID: String?, reference: String?, limit: Int) async throws -> [CallbackView] {
        let rows = try await client.query("""
            SELECT id, webhook_id, partner, transaction_id, reference, refund_id, kind, result_code, url, state, attempts,
                max_attempts, next_ms, faults, is_duplicate, created_ms, finished_ms
            FROM sandbox_callbacks
            WHERE (\(partner)::text IS NULL OR partner = \(partner))
              AND (\(transactionID)::text IS NULL OR transaction_id = \(transactionID))
              AND (\(reference)::text IS NULL OR reference = \(reference))
            ORDER BY id LIMIT \(Int64(limit))
            """, logger: logger)
        var views: [CallbackView] = []
        for row in rows {
            func text(_ i: Int) throws -> String { try row.decode(column: i, as: String.self) }
            func int(_ i: Int) throws -> Int64 { try row.decode(column: i, as: Int64.self) }
            views.append(CallbackView(
                id: try int(0), webhookID: try text(1), partner: try text(2), transactionID: try text(3),
                reference: try text(4), refundID: try row.decode(column: 5, as: String?.self), kind: try text(6),
                resultCode: try text(7), url: try text(8), state: try text(9), attempts: try int(10),
                maxAttempts: try int(11), nextMilliseconds: try row.decode(column: 12, as: Int64?.self),
                faults: try text(13), isDuplicate: try row.decode(column: 14, as: Bool.self),
                createdMilliseconds: try int(15), finishedMilliseconds: try row.decode(column: 16, as: Int64?.self),
                attemptLog: []))
        }
        guard !views.isEmpty else { return [] }
        let attemptRows = try await client.query("""
            SELECT callback_id, attempt, webhook_timestamp, started_ms, latency_ms, http_status, result_code, outcome, tampered
            FROM sandbox_callback_attempts WHERE callback_id = ANY(\(views.map(\.id))::bigint[]) ORDER BY id
            """, logger: logger)
        var byCallback: [Int64: [CallbackAttempt]] = [:]
        for row in attemptRows {
            let (callbackID, attempt, timestamp, started, latency, status, code, outcome, tampered) =
                try row.decode((Int64, Int64, Int64, Int64, Int64, Int64?, String?, String, Bool).self)
            byCallback[callbackID, default: []].append(CallbackAttempt(
                callbackID: callbackID, attempt: attempt, webhookTimestamp: timestamp, startedMilliseconds: started,
                latencyMilliseconds: latency, httpStatus: status, resultCode: code, outcome: outcome, tampered: tampered))
        }
        for i in views.indices { views[i].attemptLog = byCallback[views[i].id] ?? [] }
        return views
    }
}

/// A stored row the sandbox cannot read back (only a foreign write could cause it).
enum SandboxStoreError: Error, CustomStringConvertible {
    case corruptRow
    var description: String { "sandbox store: unreadable row" }
}
