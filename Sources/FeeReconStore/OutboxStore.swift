import FeeReconCore
import Foundation
import Postgres

/// A notification to the one-stop system as stored.
public struct NotificationRecord: Sendable, Hashable {
    public var id: Int64
    public var agencyID: Int64
    public var dossierID: Int64
    public var event: String
    public var messageID: String
    public var payload: [UInt8]
    public var status: String
    public var attempts: Int
    /// Attempts made before the current retry schedule began: 0, or the count at the last replay.
    public var scheduleStart: Int
    public var nextAttemptAt: Date?
    public var lastHTTPStatus: Int?
    public var lastError: String?
    public var createdAt: Date
    public var deliveredAt: Date?
}

/// One delivery attempt as recorded.
public struct NotificationAttempt: Sendable, Hashable {
    public var attempt: Int
    public var startedAt: Date
    public var durationMilliseconds: Int
    public var httpStatus: Int?
    public var error: String?
}

/// All SQL of the outbox of notifications to the one-stop system.
public enum OutboxStore {
    static let columns: PostgresQuery = """
        n.id, n.agency_id, n.dossier_id, n.event, n.message_id, n.payload, n.status, n.attempts, n.next_attempt_at,
        n.last_http_status, n.last_error, n.created_at, n.delivered_at, n.schedule_start
        """

    static func decode(_ row: PostgresRow) throws -> NotificationRecord {
        NotificationRecord(
            id: try row.decode(column: 0, as: Int64.self), agencyID: try row.decode(column: 1, as: Int64.self),
            dossierID: try row.decode(column: 2, as: Int64.self), event: try row.decode(column: 3, as: String.self),
            messageID: try row.decode(column: 4, as: String.self), payload: try row.decode(column: 5, as: [UInt8].self),
            status: try row.decode(column: 6, as: String.self), attempts: Int(try row.decode(column: 7, as: Int16.self)),
            scheduleStart: Int(try row.decode(column: 13, as: Int16.self)), nextAttemptAt: try row.decode(column: 8, as: Date?.self),
            lastHTTPStatus: try row.decode(column: 9, as: Int16?.self).map(Int.init),
            lastError: try row.decode(column: 10, as: String?.self), createdAt: try row.decode(column: 11, as: Date.self),
            deliveredAt: try row.decode(column: 12, as: Date?.self))
    }

    /// Writes a notification due now, in the caller's transaction.
    public static func enqueue(
        agencyID: Int64, dossierID: Int64, intentID: UUID?, event: String, messageID: String, payload: [UInt8],
        on db: PostgresConnection
    ) async throws {
        try await db.execute("""
            INSERT INTO outbox_notifications (agency_id, dossier_id, intent_id, event, message_id, payload, next_attempt_at)
            VALUES (\(agencyID), \(dossierID), \(intentID), \(event), \(messageID), \(payload), now())
            """)
    }

    /// A notification to write with `enqueue(many:)`.
    public struct NewNotification: Sendable {
        public var agencyID: Int64
        public var dossierID: Int64
        public var intentID: UUID
        public var event: String
        public var messageID: String
        public var payload: [UInt8]

        public init(agencyID: Int64, dossierID: Int64, intentID: UUID, event: String, messageID: String, payload: [UInt8]) {
            self.agencyID = agencyID
            self.dossierID = dossierID
            self.intentID = intentID
            self.event = event
            self.messageID = messageID
            self.payload = payload
        }
    }

    /// Writes many notifications due now in one statement, in the caller's transaction.
    public static func enqueue(many notifications: [NewNotification], on db: PostgresConnection) async throws {
        guard !notifications.isEmpty else { return }
        try await db.execute("""
            INSERT INTO outbox_notifications (agency_id, dossier_id, intent_id, event, message_id, payload, next_attempt_at)
            SELECT a, d, i, e, m, p, now()
            FROM unnest(\(notifications.map(\.agencyID)), \(notifications.map(\.dossierID)), \(notifications.map(\.intentID)),
                        \(notifications.map(\.event)), \(notifications.map(\.messageID)), \(notifications.map(\.payload)))
                WITH ORDINALITY AS x(a, d, i, e, m, p, n)
            ORDER BY n
            """)
    }

    /// Claims up to `limit` due notifications with the agency's URL, leasing them for `lease`.
    public static func claimDue(
        limit: Int, lease: Duration, on db: PostgresConnection
    ) async throws -> [(notification: NotificationRecord, url: String?)] {
        let leaseMilliseconds = lease.wholeMilliseconds
        return try await db.query("""
            WITH due AS (
                SELECT id FROM outbox_notifications
                WHERE status = 'pending' AND next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
            UPDATE outbox_notifications n SET next_attempt_at = now() + \(leaseMilliseconds) * interval '1 millisecond'
            FROM due, agencies a WHERE n.id = due.id AND a.id = n.agency_id
            RETURNING \(fragment: columns), a.notify_url
            """).map { row in (try decode(row), try row.decode(column: 14, as: String?.self)) }
    }

    /// Records an attempt and what follows it: delivered, retried after `retryAfter`, or failed.
    /// The attempt is numbered after those already recorded (under the row's lock), so two
    /// deliveries that overlapped — a lease outlived, say — are both recorded, and a notification
    /// once delivered stays delivered whatever is recorded after it. Returns the attempt's number.
    @discardableResult
    public static func recordAttempt(
        id: Int64, startedAt: Date, duration: Duration, httpStatus: Int?, error: String?,
        delivered: Bool, retryAfter: Duration?, on db: PostgresConnection
    ) async throws -> Int {
        let milliseconds = Int32(clamping: duration.wholeMilliseconds)
        let retry = retryAfter?.wholeMilliseconds
        let status: Int16? = httpStatus.map { Int16(clamping: $0) }
        let rows = try await db.query("""
            WITH n AS (SELECT id, (attempts + 1)::smallint AS attempt FROM outbox_notifications WHERE id = \(id) FOR UPDATE),
            a AS (
                INSERT INTO outbox_attempts (notification_id, attempt, started_at, duration_ms, http_status, error)
                SELECT n.id, n.attempt, \(startedAt), \(milliseconds), \(status), \(error) FROM n
            )
            UPDATE outbox_notifications o SET
                attempts = n.attempt,
                status = CASE WHEN o.status = 'delivered' OR \(delivered) THEN 'delivered'
                              WHEN \(retry)::bigint IS NULL THEN 'failed' ELSE 'pending' END,
                last_http_status = CASE WHEN o.status = 'delivered' THEN o.last_http_status ELSE \(status) END,
                last_error = CASE WHEN o.status = 'delivered' THEN o.last_error ELSE \(error) END,
                delivered_at = CASE WHEN o.status = 'delivered' THEN o.delivered_at WHEN \(delivered) THEN now() END,
                next_attempt_at = CASE WHEN o.status = 'delivered' OR \(delivered) OR \(retry)::bigint IS NULL THEN NULL
                                       ELSE now() + \(retry) * interval '1 millisecond' END
            FROM n WHERE o.id = n.id
            RETURNING n.attempt
            """)
        guard let row = rows.first else { throw NoSuchNotification(id: id) }
        return Int(try row.decode(Int16.self))
    }

    public struct NoSuchNotification: Error {
        public var id: Int64
    }

    /// Notifications of the given agencies, newest first, optionally of one status.
    public static func list(agencyIDs: [Int64], status: String?, limit: Int, on db: PostgresConnection) async throws -> [NotificationRecord] {
        try await db.query("""
            SELECT \(fragment: columns) FROM outbox_notifications n
            WHERE n.agency_id = ANY(\(agencyIDs)) AND (\(status)::text IS NULL OR n.status = \(status))
            ORDER BY n.created_at DESC, n.id DESC LIMIT \(Int64(limit))
            """).map(decode)
    }

    public static func notification(id: Int64, on db: PostgresConnection) async throws -> NotificationRecord? {
        try await db.query("SELECT \(fragment: columns) FROM outbox_notifications n WHERE n.id = \(id)").first.map(decode)
    }

    public static func attempts(notificationID: Int64, on db: PostgresConnection) async throws -> [NotificationAttempt] {
        try await db.query("""
            SELECT attempt, started_at, duration_ms, http_status, error FROM outbox_attempts
            WHERE notification_id = \(notificationID) ORDER BY attempt
            """).map { row in
            let (attempt, started, duration, status, error) = try row.decode((Int16, Date, Int32, Int16?, String?).self)
            return NotificationAttempt(
                attempt: Int(attempt), startedAt: started, durationMilliseconds: Int(duration), httpStatus: status.map(Int.init), error: error)
        }
    }

    /// Puts a failed notification back in line for delivery now, with the whole retry schedule
    /// ahead of it again. Returns false if it is not one of `agencyIDs'` or is not failed (a
    /// pending one is still being retried on its schedule; a delivered one is done).
    public static func replay(id: Int64, agencyIDs: [Int64], on db: PostgresConnection) async throws -> Bool {
        try await db.execute("""
            UPDATE outbox_notifications SET status = 'pending', next_attempt_at = now(), schedule_start = attempts
            WHERE id = \(id) AND agency_id = ANY(\(agencyIDs)) AND status = 'failed'
            """) == 1
    }
}
