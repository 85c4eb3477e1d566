import FeeReconCore
import Foundation
import Postgres

/// All SQL of payment intents and their append-only events. Every status change goes through
/// `transition`, which checks the edge against the state graph, updates the row under its version
/// and writes the event in the caller's transaction.
public enum IntentStore {
    static let columns: PostgresQuery = """
        id, partner_code, reference, dossier_id, amount, status, gateway_txn, checkout_url, expires_at,
        create_request, amount_refunded, bank_code, paid_at, review_reason, version, created_at, updated_at
        """

    static func decode(_ row: PostgresRow) throws -> IntentRecord {
        IntentRecord(
            id: try row.decode(column: 0, as: UUID.self),
            partner: try StoredValue.partner(try row.decode(column: 1, as: String.self)),
            reference: try StoredValue.reference(try row.decode(column: 2, as: String.self)),
            dossierID: try row.decode(column: 3, as: Int64.self),
            amount: Money(dong: try row.decode(column: 4, as: Int64.self)),
            status: try StoredValue.intentStatus(try row.decode(column: 5, as: String.self)),
            gatewayTransaction: try row.decode(column: 6, as: String?.self),
            checkoutURL: try row.decode(column: 7, as: String?.self),
            expiresAt: try row.decode(column: 8, as: Date?.self),
            createRequest: try row.decode(column: 9, as: [UInt8]?.self),
            amountRefunded: Money(dong: try row.decode(column: 10, as: Int64.self)),
            bankCode: try row.decode(column: 11, as: String?.self),
            paidAt: try row.decode(column: 12, as: Date?.self),
            reviewReason: try row.decode(column: 13, as: String?.self),
            version: try row.decode(column: 14, as: Int32.self),
            createdAt: try row.decode(column: 15, as: Date.self),
            updatedAt: try row.decode(column: 16, as: Date.self))
    }

    public static func intent(id: UUID, forUpdate: Bool = false, on db: PostgresConnection) async throws -> IntentRecord? {
        let lock: PostgresQuery = forUpdate ? " FOR UPDATE" : ""
        return try await db.query("SELECT \(fragment: columns) FROM payment_intents WHERE id = \(id)\(fragment: lock)").first.map(decode)
    }

    public static func intent(
        partner: PartnerCode, reference: PaymentReference, forUpdate: Bool = false, on db: PostgresConnection
    ) async throws -> IntentRecord? {
        let lock: PostgresQuery = forUpdate ? " FOR UPDATE" : ""
        return try await db.query("""
            SELECT \(fragment: columns) FROM payment_intents
            WHERE partner_code = \(partner.rawValue) AND reference = \(reference.rawValue)\(fragment: lock)
            """).first.map(decode)
    }

    /// Locks and returns the intents of `references` of one partner, in a fixed order so that
    /// concurrent batches never deadlock on each other.
    public static func intentsForUpdate(
        partner: PartnerCode, references: [String], on db: PostgresConnection
    ) async throws -> [IntentRecord] {
        try await db.query("""
            SELECT \(fragment: columns) FROM payment_intents
            WHERE partner_code = \(partner.rawValue) AND reference = ANY(\(references))
            ORDER BY id FOR UPDATE
            """).map(decode)
    }

    /// The dossier's open intent (created, pending or unknown), if any.
    public static func openIntent(dossierID: Int64, forUpdate: Bool = false, on db: PostgresConnection) async throws -> IntentRecord? {
        let lock: PostgresQuery = forUpdate ? " FOR UPDATE" : ""
        return try await db.query("""
            SELECT \(fragment: columns) FROM payment_intents
            WHERE dossier_id = \(dossierID) AND status IN ('created', 'pending', 'unknown')\(fragment: lock)
            """).first.map(decode)
    }

    public static func intents(dossierID: Int64, on db: PostgresConnection) async throws -> [IntentRecord] {
        try await db.query("""
            SELECT \(fragment: columns) FROM payment_intents WHERE dossier_id = \(dossierID) ORDER BY created_at, id
            """).map(decode)
    }

    /// Whether any payment of the dossier ever succeeded.
    public static func hasSucceededPayment(dossierID: Int64, on db: PostgresConnection) async throws -> Bool {
        try await db.query("""
            SELECT EXISTS (SELECT 1 FROM payment_intents WHERE dossier_id = \(dossierID)
                           AND status IN ('succeeded', 'refund_pending', 'refunded', 'partially_refunded'))
            """)[0].decode(Bool.self)
    }

    /// Inserts a new intent in `created` with its `created` event; `firstCheck` is when the
    /// janitor first asks the gateway about it if nothing else has settled it by then. A second
    /// open intent for the dossier is refused by `payment_intents_one_open_per_dossier` (23505).
    public static func insert(
        id: UUID, partner: PartnerCode, reference: PaymentReference, dossierID: Int64, amount: Money,
        createRequest: [UInt8], source: EventSource, actor: String?, firstCheck: Duration? = nil, on db: PostgresConnection
    ) async throws -> IntentRecord {
        let rows = try await db.query(insertion(
            id: id, partner: partner, reference: reference, dossierID: dossierID, amount: amount, createRequest: createRequest,
            source: source, actor: actor, firstCheck: firstCheck, unlessOpen: false, idempotencyKey: nil))
        return try decode(rows[0])
    }

    /// `insert`, unless the dossier already has an open intent: then nothing is written and nil
    /// is returned (the caller reads that one). With `idempotencyKey`, that key's claim is pointed
    /// at the new intent in the same statement. One round trip for what a new payment writes
    /// before the gateway is called.
    public static func insertUnlessOpen(
        id: UUID, partner: PartnerCode, reference: PaymentReference, dossierID: Int64, amount: Money,
        createRequest: [UInt8], source: EventSource, actor: String?, firstCheck: Duration? = nil,
        idempotencyKey: (apiKey: UUID, key: String)?, on db: PostgresConnection
    ) async throws -> IntentRecord? {
        let rows = try await db.query(insertion(
            id: id, partner: partner, reference: reference, dossierID: dossierID, amount: amount, createRequest: createRequest,
            source: source, actor: actor, firstCheck: firstCheck, unlessOpen: true, idempotencyKey: idempotencyKey))
        return try rows.first.map(decode)
    }

    /// The statement of `insert` and `insertUnlessOpen`.
    private static func insertion(
        id: UUID, partner: PartnerCode, reference: PaymentReference, dossierID: Int64, amount: Money, createRequest: [UInt8],
        source: EventSource, actor: String?, firstCheck: Duration?, unlessOpen: Bool, idempotencyKey: (apiKey: UUID, key: String)?
    ) -> PostgresQuery {
        let checkAfter = firstCheck?.wholeMilliseconds
        let detail = ["amount": "\(amount.dong)", "reference": reference.rawValue]
        let onConflict: PostgresQuery = unlessOpen ? "ON CONFLICT (dossier_id) WHERE status IN ('created', 'pending', 'unknown') DO NOTHING" : ""
        let attach: PostgresQuery = idempotencyKey.map { key in
            """
            , k AS (
                UPDATE idempotency_keys SET intent_id = i.id FROM i WHERE api_key_id = \(key.apiKey) AND key = \(key.key)
            )
            """
        } ?? ""
        return """
            WITH i AS (
                INSERT INTO payment_intents (id, partner_code, reference, dossier_id, amount, status, create_request, next_check_at)
                VALUES (\(id), \(partner.rawValue), \(reference.rawValue), \(dossierID), \(amount.dong), 'created', \(createRequest),
                        now() + \(checkAfter) * interval '1 millisecond')
                \(fragment: onConflict)
                RETURNING \(fragment: columns)
            ), e AS (
                INSERT INTO intent_events (intent_id, kind, from_status, to_status, source, inbound_message_id, actor, detail)
                SELECT id, \(IntentEventKind.created.rawValue), NULL, 'created', \(source.rawValue), NULL, \(actor), \(JSONText.jsonb(detail))
                FROM i
            )\(fragment: attach)
            SELECT \(fragment: columns) FROM i
            """
    }

    /// What a transition changes besides the status.
    public struct Changes: Sendable {
        public var gatewayTransaction: String?
        public var checkoutURL: String?
        public var expiresAt: Date?
        public var bankCode: String?
        public var paidAt: Date?
        /// Sets the review flag (an existing reason is kept).
        public var review: String?

        public init(
            gatewayTransaction: String? = nil, checkoutURL: String? = nil, expiresAt: Date? = nil, bankCode: String? = nil,
            paidAt: Date? = nil, review: String? = nil
        ) {
            self.gatewayTransaction = gatewayTransaction
            self.checkoutURL = checkoutURL
            self.expiresAt = expiresAt
            self.bankCode = bankCode
            self.paidAt = paidAt
            self.review = review
        }
    }

    public struct ConcurrentModification: Error, CustomStringConvertible {
        public var intentID: UUID
        public var description: String { "payment intent \(intentID) changed concurrently" }
    }

    public struct ForbiddenTransition: Error, CustomStringConvertible {
        public var from: IntentStatus
        public var event: IntentEventKind
        public var to: IntentStatus
        public var description: String { "no edge \(from.rawValue) -[\(event.rawValue)]-> \(to.rawValue)" }
    }

    /// Moves `intent` along the edge `event` to `to`, applying `changes`, and writes the event.
    /// Fails if the edge is not in the state graph or the row changed since it was read.
    @discardableResult
    public static func transition(
        _ intent: IntentRecord, to: IntentStatus, event: IntentEventKind, changes: Changes = Changes(),
        source: EventSource, messageID: Int64? = nil, actor: String? = nil, detail: [String: String] = [:],
        on db: PostgresConnection
    ) async throws -> IntentRecord {
        guard IntentStateMachine.allows(from: intent.status, event: event, to: to) else {
            throw ForbiddenTransition(from: intent.status, event: event, to: to)
        }
        var detail = detail
        if let review = changes.review { detail["review"] = review }
        // The update and its event in one statement: the event is written only if the row matched.
        let rows = try await db.query("""
            WITH u AS (
                UPDATE payment_intents SET
                    status = \(to.rawValue),
                    gateway_txn = COALESCE(\(changes.gatewayTransaction), gateway_txn),
                    checkout_url = COALESCE(\(changes.checkoutURL), checkout_url),
                    expires_at = COALESCE(\(changes.expiresAt), expires_at),
                    bank_code = COALESCE(\(changes.bankCode), bank_code),
                    paid_at = COALESCE(\(changes.paidAt), paid_at),
                    needs_review = needs_review OR \(changes.review != nil),
                    review_reason = COALESCE(review_reason, \(changes.review)),
                    next_check_at = CASE WHEN \(to.isOpen) THEN next_check_at END,
                    version = version + 1,
                    updated_at = now()
                WHERE id = \(intent.id) AND version = \(intent.version)
                RETURNING \(fragment: columns)
            ), e AS (
                INSERT INTO intent_events (intent_id, kind, from_status, to_status, source, inbound_message_id, actor, detail)
                SELECT id, \(event.rawValue), \(intent.status.rawValue), \(to.rawValue), \(source.rawValue), \(messageID),
                       \(actor), \(JSONText.jsonb(detail))
                FROM u
            )
            SELECT \(fragment: columns) FROM u
            """)
        guard let row = rows.first else { throw ConcurrentModification(intentID: intent.id) }
        return try decode(row)
    }

    /// One edge of `transition(many:)`: the intent as read (and locked), where it goes, and the
    /// message that moved it.
    public struct Transition: Sendable {
        public var intent: IntentRecord
        public var to: IntentStatus
        public var event: IntentEventKind
        /// Only `gatewayTransaction`, `bankCode` and `paidAt` may be set.
        public var changes: Changes
        public var messageID: Int64
        public var detail: [String: String]

        public init(
            intent: IntentRecord, to: IntentStatus, event: IntentEventKind, changes: Changes, messageID: Int64,
            detail: [String: String]
        ) {
            self.intent = intent
            self.to = to
            self.event = event
            self.changes = changes
            self.messageID = messageID
            self.detail = detail
        }
    }

    /// `transition` for many distinct intents in one statement, as a batch of callbacks needs it:
    /// every edge is checked against the state graph, every row updated under its version, and
    /// every event written. Returns the updated intents in input order. Fails if an edge is not in
    /// the graph or any row changed since it was read; the caller's transaction must then roll
    /// back, as `withTransaction` does.
    ///
    /// A row updated here is still at the version it was read at, so every other column of its
    /// record is as read (every change to a recorded column bumps the version): the returned
    /// records are the input ones with the changes applied, and only the new version, `updated_at`
    /// and `paid_at` (as rounded to microseconds by the server) come back from the statement.
    public static func transition(
        many transitions: [Transition], source: EventSource, on db: PostgresConnection
    ) async throws -> [IntentRecord] {
        guard !transitions.isEmpty else { return [] }
        precondition(Set(transitions.map(\.intent.id)).count == transitions.count, "one transition per intent")
        var ids: [UUID] = [], versions: [Int32] = [], from: [String] = [], to: [String] = [], kinds: [String] = []
        var txns: [String] = [], hasTxn: [Bool] = [], banks: [String] = [], hasBank: [Bool] = []
        var paid: [Date] = [], hasPaid: [Bool] = [], open: [Bool] = [], messages: [Int64] = [], details: [String] = []
        for t in transitions {
            guard IntentStateMachine.allows(from: t.intent.status, event: t.event, to: t.to) else {
                throw ForbiddenTransition(from: t.intent.status, event: t.event, to: t.to)
            }
            precondition(
                t.changes.checkoutURL == nil && t.changes.expiresAt == nil && t.changes.review == nil,
                "transition(many:) sets the gateway transaction, bank and payment time only")
            ids.append(t.intent.id)
            versions.append(t.intent.version)
            from.append(t.intent.status.rawValue)
            to.append(t.to.rawValue)
            kinds.append(t.event.rawValue)
            txns.append(t.changes.gatewayTransaction ?? "")
            hasTxn.append(t.changes.gatewayTransaction != nil)
            banks.append(t.changes.bankCode ?? "")
            hasBank.append(t.changes.bankCode != nil)
            paid.append(t.changes.paidAt ?? Date(timeIntervalSince1970: 0))
            hasPaid.append(t.changes.paidAt != nil)
            open.append(t.to.isOpen)
            messages.append(t.messageID)
            details.append(JSONText.object(t.detail))
        }
        let rows = try await db.query("""
            WITH v AS (
                SELECT * FROM unnest(\(ids), \(versions), \(from), \(to), \(kinds), \(txns), \(hasTxn), \(banks), \(hasBank),
                                     \(paid), \(hasPaid), \(open), \(messages), \(details))
                    WITH ORDINALITY AS v(id, version, from_status, to_status, kind, txn, has_txn, bank, has_bank, paid_at,
                                         has_paid, open, message_id, detail, n)
            ), u AS (
                UPDATE payment_intents p SET
                    status = v.to_status,
                    gateway_txn = CASE WHEN v.has_txn THEN v.txn ELSE p.gateway_txn END,
                    bank_code = CASE WHEN v.has_bank THEN v.bank ELSE p.bank_code END,
                    paid_at = CASE WHEN v.has_paid THEN v.paid_at ELSE p.paid_at END,
                    next_check_at = CASE WHEN v.open THEN p.next_check_at END,
                    version = p.version + 1,
                    updated_at = now()
                FROM v
                WHERE p.id = v.id AND p.version = v.version
                RETURNING p.id, p.version, p.updated_at, p.paid_at
            ), e AS (
                INSERT INTO intent_events (intent_id, kind, from_status, to_status, source, inbound_message_id, detail)
                SELECT v.id, v.kind, v.from_status, v.to_status, \(source.rawValue), v.message_id, v.detail::jsonb
                FROM v JOIN u ON u.id = v.id
                ORDER BY v.n
            )
            SELECT id, version, updated_at, paid_at FROM u
            """)
        var stamped: [UUID: (version: Int32, updatedAt: Date, paidAt: Date?)] = [:]
        for row in rows {
            let (id, version, updatedAt, paidAt) = try row.decode((UUID, Int32, Date, Date?).self)
            stamped[id] = (version, updatedAt, paidAt)
        }
        return try transitions.map { t in
            guard let stamp = stamped[t.intent.id] else { throw ConcurrentModification(intentID: t.intent.id) }
            var intent = t.intent
            intent.status = t.to
            if let txn = t.changes.gatewayTransaction { intent.gatewayTransaction = txn }
            if let bank = t.changes.bankCode { intent.bankCode = bank }
            intent.paidAt = stamp.paidAt
            intent.version = stamp.version
            intent.updatedAt = stamp.updatedAt
            return intent
        }
    }

    /// The gateway's acceptance of a new intent: `created` becomes `pending` with the gateway's
    /// transaction, checkout URL and deadline, stamped `updatedAt`; with `completion`, the
    /// intent's Idempotency-Key gets its answer in the same statement.
    public struct Acceptance: Sendable {
        /// The intent as its creation committed it.
        public var intent: IntentRecord
        public var gatewayTransaction: String
        public var checkoutURL: String
        public var expiresAt: Date
        public var updatedAt: Date
        public var completion: IdempotencyStore.Completion?

        public init(
            intent: IntentRecord, gatewayTransaction: String, checkoutURL: String, expiresAt: Date, updatedAt: Date,
            completion: IdempotencyStore.Completion?
        ) {
            self.intent = intent
            self.gatewayTransaction = gatewayTransaction
            self.checkoutURL = checkoutURL
            self.expiresAt = expiresAt
            self.updatedAt = updatedAt
            self.completion = completion
        }

        /// The intent as the acceptance leaves it, if its row still is as `intent` was read.
        public var accepted: IntentRecord {
            var accepted = intent
            accepted.status = .pending
            accepted.gatewayTransaction = gatewayTransaction
            accepted.checkoutURL = checkoutURL
            accepted.expiresAt = expiresAt
            accepted.version += 1
            accepted.updatedAt = updatedAt
            return accepted
        }
    }

    /// Records many acceptances of distinct intents in one statement, as concurrent intent
    /// creations need it: each row moves `created` → `pending` only if it still has the version
    /// it was read with, and only those rows get their event and their key's answer. Returns the
    /// intents that moved, by id; one that is missing changed meanwhile (a callback, the
    /// janitor), and its caller records the gateway's answer under the row's lock instead.
    public static func accept(many acceptances: [Acceptance], on db: PostgresConnection) async throws -> [UUID: IntentRecord] {
        guard !acceptances.isEmpty else { return [:] }
        precondition(Set(acceptances.map(\.intent.id)).count == acceptances.count, "one acceptance per intent")
        var ids: [UUID] = [], versions: [Int32] = [], txns: [String] = [], urls: [String] = []
        var expires: [Date] = [], stamps: [Date] = [], hasKey: [Bool] = [], apiKeys: [UUID] = [], keys: [String] = []
        var statuses: [Int16] = [], bodies: [[UInt8]] = []
        for a in acceptances {
            ids.append(a.intent.id)
            versions.append(a.intent.version)
            txns.append(a.gatewayTransaction)
            urls.append(a.checkoutURL)
            expires.append(a.expiresAt)
            stamps.append(a.completion?.updatedAt ?? a.updatedAt)
            hasKey.append(a.completion != nil)
            apiKeys.append(a.completion?.apiKey ?? a.intent.id)
            keys.append(a.completion?.key ?? "")
            statuses.append(Int16(a.completion?.status ?? 0))
            bodies.append(a.completion?.body ?? [])
        }
        let rows = try await db.query("""
            WITH v AS (
                SELECT * FROM unnest(\(ids), \(versions), \(txns), \(urls), \(expires), \(stamps), \(hasKey), \(apiKeys),
                                     \(keys), \(statuses), \(bodies))
                    WITH ORDINALITY AS v(id, version, txn, url, expires_at, updated_at, has_key, api_key, key, status, body, n)
            ), u AS (
                UPDATE payment_intents p SET
                    status = 'pending', gateway_txn = v.txn, checkout_url = v.url, expires_at = v.expires_at,
                    version = p.version + 1, updated_at = v.updated_at
                FROM v
                WHERE p.id = v.id AND p.version = v.version AND p.status = 'created'
                RETURNING \(fragment: prefixed)
            ), e AS (
                INSERT INTO intent_events (intent_id, kind, from_status, to_status, source, inbound_message_id, actor, detail)
                SELECT v.id, \(IntentEventKind.gatewayAccepted.rawValue), 'created', 'pending', \(EventSource.gatewayReply.rawValue),
                       NULL, NULL, '{}'::jsonb
                FROM v JOIN u ON u.id = v.id
                ORDER BY v.n
            ), k AS (
                UPDATE idempotency_keys k SET response_status = v.status, response_body = v.body, completed_at = now()
                FROM v JOIN u ON u.id = v.id
                WHERE v.has_key AND k.api_key_id = v.api_key AND k.key = v.key AND k.response_status IS NULL
            )
            SELECT \(fragment: columns) FROM u
            """)
        var accepted: [UUID: IntentRecord] = [:]
        for row in rows {
            let intent = try decode(row)
            accepted[intent.id] = intent
        }
        return accepted
    }

    // MARK: Janitor

    /// Claims up to `limit` open intents whose check is due, leasing them for `lease` so that no
    /// other replica picks them meanwhile (`FOR UPDATE SKIP LOCKED` makes concurrent claims
    /// disjoint). Returns each with the number of checks already done.
    public static func claimDueChecks(
        limit: Int, lease: Duration, on db: PostgresConnection
    ) async throws -> [(intent: IntentRecord, checksDone: Int)] {
        let leaseMilliseconds = lease.wholeMilliseconds
        return try await db.query("""
            WITH due AS (
                SELECT id FROM payment_intents
                WHERE next_check_at <= now() AND status IN ('created', 'pending', 'unknown')
                ORDER BY next_check_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
            UPDATE payment_intents p SET next_check_at = now() + \(leaseMilliseconds) * interval '1 millisecond'
            FROM due WHERE p.id = due.id
            RETURNING \(fragment: prefixed), p.checks_done
            """).map { row in (try decode(row), Int(try row.decode(column: 17, as: Int16.self))) }
    }

    static let prefixed: PostgresQuery = """
        p.id, p.partner_code, p.reference, p.dossier_id, p.amount, p.status, p.gateway_txn, p.checkout_url, p.expires_at,
        p.create_request, p.amount_refunded, p.bank_code, p.paid_at, p.review_reason, p.version, p.created_at, p.updated_at
        """

    /// Records a check and schedules the next one `after` the intent's creation, or none.
    public static func recordCheck(intentID: UUID, checksDone: Int, nextAfterCreation: Duration?, on db: PostgresConnection) async throws {
        let next = nextAfterCreation?.wholeMilliseconds
        try await db.execute("""
            UPDATE payment_intents SET checks_done = \(Int16(clamping: checksDone)),
                next_check_at = CASE WHEN status IN ('created', 'pending', 'unknown') AND \(next)::bigint IS NOT NULL
                                     THEN GREATEST(created_at + \(next) * interval '1 millisecond', now()) END
            WHERE id = \(intentID)
            """)
    }

    public static func appendEvent(
        intentID: UUID, kind: IntentEventKind, from: IntentStatus?, to: IntentStatus, source: EventSource,
        messageID: Int64?, actor: String?, detail: [String: String], on db: PostgresConnection
    ) async throws {
        try await db.execute("""
            INSERT INTO intent_events (intent_id, kind, from_status, to_status, source, inbound_message_id, actor, detail)
            VALUES (\(intentID), \(kind.rawValue), \(from?.rawValue), \(to.rawValue), \(source.rawValue), \(messageID),
                    \(actor), \(JSONText.jsonb(detail)))
            """)
    }

    public static func events(intentID: UUID, on db: PostgresConnection) async throws -> [IntentEventRecord] {
        try await db.query("""
            SELECT id, intent_id, kind, from_status, to_status, source, inbound_message_id, actor, detail::text, occurred_at
            FROM intent_events WHERE intent_id = \(intentID) ORDER BY id
            """).map { row in
            let (id, intent, kind, from, to, source, message, actor, detail, at) =
                try row.decode((Int64, UUID, String, String?, String, String, Int64?, String?, String, Date).self)
            return IntentEventRecord(
                id: id, intentID: intent, kind: kind, fromStatus: from, toStatus: to, source: source,
                inboundMessageID: message, actor: actor, detail: detail, occurredAt: at)
        }
    }
}
