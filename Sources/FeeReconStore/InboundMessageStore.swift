import FeeReconCore
import Foundation
import Postgres

/// All SQL of the raw store of verified inbound gateway messages.
public enum InboundMessageStore {
    /// The final answer already given to `webhookID`, if any: replayed byte for byte.
    public static func finalAnswer(
        partner: PartnerCode, webhookID: String, on db: PostgresConnection
    ) async throws -> (code: String, body: [UInt8])? {
        try await db.query("""
            SELECT result_code, reply_body FROM inbound_messages
            WHERE partner_code = \(partner.rawValue) AND webhook_id = \(webhookID) AND is_final
            """).first.map { try $0.decode((String, [UInt8]).self) }
    }

    /// The final answers already given to any of `webhookIDs`.
    public static func finalAnswers(
        partner: PartnerCode, webhookIDs: [String], on db: PostgresConnection
    ) async throws -> [String: (code: String, body: [UInt8])] {
        var answers: [String: (code: String, body: [UInt8])] = [:]
        for row in try await db.query("""
            SELECT webhook_id, result_code, reply_body FROM inbound_messages
            WHERE partner_code = \(partner.rawValue) AND webhook_id = ANY(\(webhookIDs)) AND is_final
            """) {
            let (id, code, body) = try row.decode((String, String, [UInt8]).self)
            answers[id] = (code, body)
        }
        return answers
    }

    /// A verified message as received, and how it was answered.
    public struct NewMessage: Sendable {
        public var partner: PartnerCode
        public var webhookID: String
        public var messageType: String
        /// Every header of the request, in order.
        public var headers: [[String]]
        public var body: [UInt8]
        public var reference: String?
        public var intentID: UUID?
        public var resultCode: String
        public var replyBody: [UInt8]

        public init(
            partner: PartnerCode, webhookID: String, messageType: String, headers: [[String]], body: [UInt8],
            reference: String?, intentID: UUID?, resultCode: String, replyBody: [UInt8]
        ) {
            self.partner = partner
            self.webhookID = webhookID
            self.messageType = messageType
            self.headers = headers
            self.body = body
            self.reference = reference
            self.intentID = intentID
            self.resultCode = resultCode
            self.replyBody = replyBody
        }
    }

    /// Stores the message; returns its id, or nil when another delivery of the same webhook-id
    /// already holds a final answer (the caller then replays that answer instead).
    public static func insert(_ message: NewMessage, on db: PostgresConnection) async throws -> Int64? {
        let rows = try await db.query("""
            INSERT INTO inbound_messages
                (partner_code, webhook_id, message_type, headers, body, reference, intent_id, result_code, reply_body)
            VALUES (\(message.partner.rawValue), \(message.webhookID), \(message.messageType), \(JSONText.jsonb(rows: message.headers)),
                    \(message.body), \(message.reference), \(message.intentID), \(message.resultCode), \(message.replyBody))
            ON CONFLICT (partner_code, webhook_id) WHERE is_final DO NOTHING
            RETURNING id
            """)
        return try rows.first?.decode(Int64.self)
    }

    /// Stores many messages about known intents in one statement; returns each one's id in input
    /// order, or nil where another delivery of the same webhook-id already holds a final answer.
    /// Every message must have a reference and an intent, and the (partner, webhook-id) pairs
    /// must be distinct.
    public static func insert(
        many messages: [NewMessage], on db: PostgresConnection
    ) async throws -> [Int64?] {
        guard !messages.isEmpty else { return [] }
        var partners: [String] = [], webhookIDs: [String] = [], types: [String] = [], headers: [String] = []
        var bodies: [[UInt8]] = [], references: [String] = [], intents: [UUID] = [], codes: [String] = []
        var replies: [[UInt8]] = []
        for message in messages {
            guard let reference = message.reference, let intent = message.intentID else {
                preconditionFailure("insert(many:) takes messages about known intents only")
            }
            partners.append(message.partner.rawValue)
            webhookIDs.append(message.webhookID)
            types.append(message.messageType)
            headers.append(JSONText.array(of: message.headers))
            bodies.append(message.body)
            references.append(reference)
            intents.append(intent)
            codes.append(message.resultCode)
            replies.append(message.replyBody)
        }
        let rows = try await db.query("""
            INSERT INTO inbound_messages
                (partner_code, webhook_id, message_type, headers, body, reference, intent_id, result_code, reply_body)
            SELECT p, w, t, h::jsonb, b, r, i, c, rb
            FROM unnest(\(partners), \(webhookIDs), \(types), \(headers), \(bodies), \(references), \(intents), \(codes),
                        \(replies)) WITH ORDINALITY AS m(p, w, t, h, b, r, i, c, rb, n)
            ORDER BY n
            ON CONFLICT (partner_code, webhook_id) WHERE is_final DO NOTHING
            RETURNING id, partner_code, webhook_id
            """)
        var ids: [String: Int64] = [:]
        for row in rows {
            let (id, partner, webhookID) = try row.decode((Int64, String, String).self)
            ids[partner + "/" + webhookID] = id
        }
        return messages.map { ids[$0.partner.rawValue + "/" + $0.webhookID] }
    }

    public static func count(on db: PostgresConnection) async throws -> Int64 {
        try await db.query("SELECT count(*) FROM inbound_messages")[0].decode(Int64.self)
    }
}
