import Cryptography
import FeeReconCore
import Foundation
import Postgres

/// All SQL of API keys and their agency scopes.
public enum APIKeyStore {
    /// A key as handed to its owner once: `frk_<prefix>_<secret>`. Only the secret's SHA-256 is stored.
    public struct IssuedKey: Sendable {
        public var id: UUID
        public var plaintext: String
    }

    static let keyPrefix = "frk_"

    public static func create(name: String, agencyIDs: [Int64], on db: PostgresConnection) async throws -> IssuedKey {
        let id = SecureRandom.uuid()
        let prefix = SecureRandom.string(length: 12, alphabet: SecureRandom.alphanumeric)
        let secret = SecureRandom.token(bytes: 32)
        try await db.execute("""
            INSERT INTO api_keys (id, prefix, secret_sha256, name)
            VALUES (\(id), \(prefix), \(SHA256.hash(Array(secret.utf8))), \(name))
            """)
        try await db.execute("""
            INSERT INTO api_key_agencies (api_key_id, agency_id) SELECT \(id), unnest(\(agencyIDs))
            """)
        return IssuedKey(id: id, plaintext: keyPrefix + prefix + "_" + secret)
    }

    public static func exists(name: String, on db: PostgresConnection) async throws -> Bool {
        try await db.query("SELECT EXISTS (SELECT 1 FROM api_keys WHERE name = \(name) AND revoked_at IS NULL)")[0].decode(Bool.self)
    }

    /// The client a presented key belongs to, or nil if it is unknown, revoked or wrong. The
    /// secret is compared in constant time.
    public static func authenticate(_ presented: String, on db: PostgresConnection) async throws -> APIClient? {
        guard let parts = PresentedKey(presented), let stored = try await storedKey(prefix: parts.prefix, on: db) else { return nil }
        return stored.client(presenting: parts.secret)
    }

    /// A presented key split into its public prefix and its secret, if it has the shape of one.
    public struct PresentedKey: Sendable {
        public var prefix: String
        public var secret: [UInt8]

        public init?(_ presented: String) {
            guard presented.hasPrefix(APIKeyStore.keyPrefix) else { return nil }
            let rest = presented.dropFirst(APIKeyStore.keyPrefix.count)
            guard let separator = rest.firstIndex(of: "_") else { return nil }
            let prefix = String(rest[..<separator])
            let secret = Array(rest[rest.index(after: separator)...].utf8)
            guard (8...16).contains(prefix.utf8.count), prefix.utf8.allSatisfy({ $0 < 0x80 }), !secret.isEmpty, secret.count <= 128 else {
                return nil
            }
            self.prefix = prefix
            self.secret = secret
        }
    }

    /// A live key as stored: whom it belongs to, its agencies, and its secret's SHA-256.
    public struct StoredKey: Sendable {
        public var id: UUID
        public var name: String
        public var secretSHA256: [UInt8]
        public var agencyIDs: Set<Int64>

        /// The client, if `secret` is this key's (compared in constant time).
        public func client(presenting secret: [UInt8]) -> APIClient? {
            guard constantTimeEquals(SHA256.hash(secret), secretSHA256) else { return nil }
            return APIClient(id: id, name: name, agencyIDs: agencyIDs)
        }
    }

    /// The unrevoked key with `prefix`, if any.
    public static func storedKey(prefix: String, on db: PostgresConnection) async throws -> StoredKey? {
        let rows = try await db.query("""
            SELECT k.id, k.name, k.secret_sha256, COALESCE(array_agg(s.agency_id) FILTER (WHERE s.agency_id IS NOT NULL), '{}')
            FROM api_keys k LEFT JOIN api_key_agencies s ON s.api_key_id = k.id
            WHERE k.prefix = \(prefix) AND k.revoked_at IS NULL
            GROUP BY k.id
            """)
        guard let row = rows.first else { return nil }
        let (id, name, stored, agencies) = try row.decode((UUID, String, [UInt8], [Int64]).self)
        return StoredKey(id: id, name: name, secretSHA256: stored, agencyIDs: Set(agencies))
    }
}

/// All SQL of intent-creation idempotency keys.
public enum IdempotencyStore {
    public enum Claim: Sendable {
        /// First use: the caller proceeds and completes the key.
        case claimed
        /// Same key, same request, already answered: send this again.
        case replay(status: Int, body: [UInt8])
        /// Same key, same request, not answered yet (in flight, or interrupted).
        case inProgress(intentID: UUID?)
        /// Same key, a different request.
        case mismatch
    }

    /// How long a key is remembered at least.
    public static let retention: Duration = .seconds(48 * 3600)

    public static func claim(apiKey: UUID, key: String, requestHash: [UInt8], on db: PostgresConnection) async throws -> Claim {
        let inserted = try await db.execute("""
            INSERT INTO idempotency_keys (api_key_id, key, request_sha256) VALUES (\(apiKey), \(key), \(requestHash))
            ON CONFLICT (api_key_id, key) DO NOTHING
            """)
        if inserted == 1 { return .claimed }
        return try await existing(apiKey: apiKey, key: key, requestHash: requestHash, on: db)
    }

    /// What a key claimed before says about a request with `requestHash`.
    public static func existing(apiKey: UUID, key: String, requestHash: [UInt8], on db: PostgresConnection) async throws -> Claim {
        let rows = try await db.query("""
            SELECT request_sha256, intent_id, response_status, response_body FROM idempotency_keys
            WHERE api_key_id = \(apiKey) AND key = \(key)
            """)
        guard let row = rows.first else { return .inProgress(intentID: nil) }
        let (hash, intent, status, body) = try row.decode(([UInt8], UUID?, Int16?, [UInt8]?).self)
        guard constantTimeEquals(hash, requestHash) else { return .mismatch }
        if let status, let body { return .replay(status: Int(status), body: body) }
        return .inProgress(intentID: intent)
    }

    public static func attach(apiKey: UUID, key: String, intentID: UUID, on db: PostgresConnection) async throws {
        try await db.execute("""
            UPDATE idempotency_keys SET intent_id = \(intentID) WHERE api_key_id = \(apiKey) AND key = \(key)
            """)
    }

    /// A key's answer, stored in the statement that makes the change it describes.
    public struct Completion: Sendable {
        public var apiKey: UUID
        public var key: String
        public var status: Int
        public var body: [UInt8]
        /// The `updated_at` the change is given, so that the answer rendered before it matches.
        public var updatedAt: Date

        public init(apiKey: UUID, key: String, status: Int, body: [UInt8], updatedAt: Date) {
            self.apiKey = apiKey
            self.key = key
            self.status = status
            self.body = body
            self.updatedAt = updatedAt
        }
    }

    public static func complete(apiKey: UUID, key: String, status: Int, body: [UInt8], on db: PostgresConnection) async throws {
        try await db.execute("""
            UPDATE idempotency_keys SET response_status = \(Int16(status)), response_body = \(body), completed_at = now()
            WHERE api_key_id = \(apiKey) AND key = \(key) AND response_status IS NULL
            """)
    }

    /// Forgets a claim whose request failed before anything was created, so the client may retry.
    public static func release(apiKey: UUID, key: String, on db: PostgresConnection) async throws {
        try await db.execute("""
            DELETE FROM idempotency_keys WHERE api_key_id = \(apiKey) AND key = \(key) AND response_status IS NULL AND intent_id IS NULL
            """)
    }

    /// Removes keys older than the retention; returns how many.
    public static func purge(olderThan seconds: Int64, on db: PostgresConnection) async throws -> Int {
        try await db.execute("""
            DELETE FROM idempotency_keys WHERE created_at < now() - \(seconds) * interval '1 second'
            """)
    }
}

/// All SQL of the exceptions queue.
public enum ExceptionStore {
    /// Opens an exception unless one of the same kind is already open for the same intent (or
    /// dossier); returns whether a new one was opened.
    @discardableResult
    public static func open(
        _ kind: ExceptionKind, agencyID: Int64?, dossierID: Int64?, intentID: UUID?, messageID: Int64?,
        amount: Money?, detail: [String: String], on db: PostgresConnection
    ) async throws -> Bool {
        try await db.execute("""
            INSERT INTO exceptions (kind, agency_id, dossier_id, intent_id, inbound_message_id, amount, detail)
            VALUES (\(kind.rawValue), \(agencyID), \(dossierID), \(intentID), \(messageID), \(amount?.dong), \(JSONText.jsonb(detail)))
            ON CONFLICT DO NOTHING
            """) == 1
    }

    public static func openExceptions(intentID: UUID, on db: PostgresConnection) async throws -> [ExceptionRecord] {
        try await db.query("""
            SELECT id, kind, status, agency_id, dossier_id, intent_id, inbound_message_id, amount, detail::text, opened_at
            FROM exceptions WHERE intent_id = \(intentID) AND status = 'open' ORDER BY id
            """).map(decode)
    }

    public static func openExceptions(dossierID: Int64, on db: PostgresConnection) async throws -> [ExceptionRecord] {
        try await db.query("""
            SELECT id, kind, status, agency_id, dossier_id, intent_id, inbound_message_id, amount, detail::text, opened_at
            FROM exceptions WHERE dossier_id = \(dossierID) AND status = 'open' ORDER BY id
            """).map(decode)
    }

    public static func openExceptions(kind: ExceptionKind, on db: PostgresConnection) async throws -> [ExceptionRecord] {
        try await db.query("""
            SELECT id, kind, status, agency_id, dossier_id, intent_id, inbound_message_id, amount, detail::text, opened_at
            FROM exceptions WHERE kind = \(kind.rawValue) AND status = 'open' ORDER BY id
            """).map(decode)
    }

    static func decode(_ row: PostgresRow) throws -> ExceptionRecord {
        let (id, kind, status, agency, dossier, intent, message, amount, detail, opened) =
            try row.decode((Int64, String, String, Int64?, Int64?, UUID?, Int64?, Int64?, String, Date).self)
        return ExceptionRecord(
            id: id, kind: kind, status: status, agencyID: agency, dossierID: dossier, intentID: intent,
            inboundMessageID: message, amount: amount.map { Money(dong: $0) }, detail: detail, openedAt: opened)
    }
}

/// All SQL of the audit log, which the database keeps append-only.
public enum AuditStore {
    public enum ActorKind: String, Sendable {
        case officer
        case apiKey = "api_key"
        case `operator`
        case system
    }

    public static func record(
        actor: ActorKind, actorID: String, action: String, agencyID: Int64?, subject: String?, reason: String? = nil,
        detail: [String: String] = [:], requestID: String?, on db: PostgresConnection
    ) async throws {
        try await db.execute("""
            INSERT INTO audit_log (actor_kind, actor_id, action, agency_id, subject, reason, detail, request_id)
            VALUES (\(actor.rawValue), \(actorID), \(action), \(agencyID), \(subject), \(reason), \(JSONText.jsonb(detail)), \(requestID))
            """)
    }
}
