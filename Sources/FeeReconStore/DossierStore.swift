import FeeReconCore
import Foundation
import Postgres

/// All SQL of agencies, dossiers and fee lines.
public enum DossierStore {
    // MARK: Agencies

    public static func agency(code: AgencyCode, on db: PostgresConnection) async throws -> AgencyRecord? {
        let rows = try await db.query("SELECT id, code, name, partner_code FROM agencies WHERE code = \(code.rawValue)")
        return try rows.first.map(decodeAgency)
    }

    public static func agencies(on db: PostgresConnection) async throws -> [AgencyRecord] {
        try await db.query("SELECT id, code, name, partner_code FROM agencies ORDER BY code").map(decodeAgency)
    }

    /// Creates the agency or renames it; returns it.
    @discardableResult
    public static func upsertAgency(code: AgencyCode, name: String, partner: PartnerCode, on db: PostgresConnection) async throws -> AgencyRecord {
        let rows = try await db.query("""
            INSERT INTO agencies (code, name, partner_code) VALUES (\(code.rawValue), \(name), \(partner.rawValue))
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, partner_code = EXCLUDED.partner_code
            RETURNING id, code, name, partner_code
            """)
        return try decodeAgency(rows[0])
    }

    private static func decodeAgency(_ row: PostgresRow) throws -> AgencyRecord {
        let (id, code, name, partner) = try row.decode((Int64, String, String, String).self)
        return AgencyRecord(
            id: id, code: try StoredValue.agencyCode(code), name: name, partner: try StoredValue.partner(partner))
    }

    public static func agencyID(dossierID: Int64, on db: PostgresConnection) async throws -> Int64? {
        try await db.query("SELECT agency_id FROM dossiers WHERE id = \(dossierID)").first?.decode(Int64.self)
    }

    // MARK: Dossiers

    /// The id and agency of the dossier `code`, without its details.
    public static func scope(code: DossierCode, on db: PostgresConnection) async throws -> (id: Int64, agencyID: Int64)? {
        try await db.query("SELECT id, agency_id FROM dossiers WHERE code = \(code.rawValue)").first.map {
            let (id, agency) = try $0.decode((Int64, Int64).self)
            return (id, agency)
        }
    }

    /// The dossier, its agency, and its fee lines in order as four parallel arrays, so that one
    /// statement reads all of it.
    private static let columns: PostgresQuery = """
        d.id, d.code, d.procedure_code, d.procedure_name, d.applicant_name, d.amount_due, d.amount_paid, d.status,
        d.pay_token, d.fees_frozen_at, d.version, d.created_at, d.updated_at, a.id, a.code, a.name, a.partner_code,
        ARRAY(SELECT kind FROM dossier_fee_lines WHERE dossier_id = d.id ORDER BY line_no),
        ARRAY(SELECT code FROM dossier_fee_lines WHERE dossier_id = d.id ORDER BY line_no),
        ARRAY(SELECT name FROM dossier_fee_lines WHERE dossier_id = d.id ORDER BY line_no),
        ARRAY(SELECT amount FROM dossier_fee_lines WHERE dossier_id = d.id ORDER BY line_no)
        """

    public static func dossier(code: DossierCode, forUpdate: Bool = false, on db: PostgresConnection) async throws -> DossierRecord? {
        try await dossier(.code(code), forUpdate: forUpdate, on: db)
    }

    public static func dossier(id: Int64, forUpdate: Bool = false, on db: PostgresConnection) async throws -> DossierRecord? {
        try await dossier(.id(id), forUpdate: forUpdate, on: db)
    }

    public static func dossier(payToken: String, forUpdate: Bool = false, on db: PostgresConnection) async throws -> DossierRecord? {
        try await dossier(where: "d.pay_token = \(payToken)", forUpdate: forUpdate, on: db)
    }

    /// A dossier by id or by code.
    public enum Selector: Sendable {
        case id(Int64)
        case code(DossierCode)

        /// The condition over `d`, the dossier.
        var condition: PostgresQuery {
            switch self {
            case .id(let id): "d.id = \(id)"
            case .code(let code): "d.code = \(code.rawValue)"
            }
        }
    }

    public static func dossier(_ selector: Selector, forUpdate: Bool = false, on db: PostgresConnection) async throws -> DossierRecord? {
        try await dossier(where: selector.condition, forUpdate: forUpdate, on: db)
    }

    /// Locks the dossier and, in the same statement, claims an Idempotency-Key for the caller's
    /// request (as `IdempotencyStore.claim` inserts it). Returns the dossier, if it exists, and
    /// whether the key was claimed by this call (false: it was claimed before; read it with
    /// `IdempotencyStore.existing`). The claim is made even when no dossier matches, so the
    /// caller must then roll back — as throwing out of `withTransaction` does.
    public static func lockedClaiming(
        _ selector: Selector, apiKey: UUID, key: String, requestHash: [UInt8], on db: PostgresConnection
    ) async throws -> (dossier: DossierRecord, claimed: Bool)? {
        let rows = try await db.query("""
            WITH claim AS (
                INSERT INTO idempotency_keys (api_key_id, key, request_sha256) VALUES (\(apiKey), \(key), \(requestHash))
                ON CONFLICT (api_key_id, key) DO NOTHING
                RETURNING 1
            )
            SELECT \(fragment: columns), EXISTS (SELECT 1 FROM claim)
            FROM dossiers d JOIN agencies a ON a.id = d.agency_id WHERE \(fragment: selector.condition) FOR UPDATE OF d
            """)
        guard let row = rows.first else { return nil }
        return (try decodeDossier(row), try row.decode(column: 21, as: Bool.self))
    }

    /// The one dossier matching `condition` (over `d`, the dossier), locked if asked.
    private static func dossier(where condition: PostgresQuery, forUpdate: Bool, on db: PostgresConnection) async throws -> DossierRecord? {
        let lock: PostgresQuery = forUpdate ? " FOR UPDATE OF d" : ""
        let rows = try await db.query(
            "SELECT \(fragment: columns) FROM dossiers d JOIN agencies a ON a.id = d.agency_id WHERE \(fragment: condition)\(fragment: lock)")
        return try rows.first.map(decodeDossier)
    }

    /// Dossiers of the given agencies, newest first (for demo listings and officer views).
    public static func recentDossiers(agencyIDs: [Int64], limit: Int, on db: PostgresConnection) async throws -> [DossierRecord] {
        let rows = try await db.query("""
            SELECT \(fragment: columns) FROM dossiers d JOIN agencies a ON a.id = d.agency_id
            WHERE d.agency_id = ANY(\(agencyIDs)) ORDER BY d.created_at DESC, d.id DESC LIMIT \(Int64(limit))
            """)
        return try rows.map(decodeDossier)
    }

    private static func decodeDossier(_ row: PostgresRow) throws -> DossierRecord {
        let (id, code, procedureCode, procedureName, applicantName, due, paid, status, token, frozen, version, created, updated) =
            try decodeHead(row)
        let agency = AgencyRecord(
            id: try row.decode(column: 13, as: Int64.self),
            code: try StoredValue.agencyCode(try row.decode(column: 14, as: String.self)),
            name: try row.decode(column: 15, as: String.self),
            partner: try StoredValue.partner(try row.decode(column: 16, as: String.self)))
        let kinds = try row.decode(column: 17, as: [String].self)
        let codes = try row.decode(column: 18, as: [String].self)
        let names = try row.decode(column: 19, as: [String].self)
        let amounts = try row.decode(column: 20, as: [Int64].self)
        guard codes.count == kinds.count, names.count == kinds.count, amounts.count == kinds.count else {
            throw StoredValue.Corrupt(what: "fee lines")
        }
        let lines = try kinds.indices.map { i in
            guard let feeKind = FeeKind(rawValue: kinds[i]) else { throw StoredValue.Corrupt(what: "fee line kind") }
            return FeeLine(kind: feeKind, code: codes[i], name: names[i], amount: Money(dong: amounts[i]))
        }
        return DossierRecord(
            id: id, code: try StoredValue.dossierCode(code), agency: agency, procedureCode: procedureCode,
            procedureName: procedureName, applicantName: applicantName, amountDue: Money(dong: due),
            amountPaid: Money(dong: paid), status: try StoredValue.dossierStatus(status), payToken: token,
            feesFrozenAt: frozen, feeLines: lines, version: version, createdAt: created, updatedAt: updated)
    }

    private static func decodeHead(_ row: PostgresRow) throws
        -> (Int64, String, String, String, String, Int64, Int64, String, String, Date?, Int32, Date, Date)
    {
        (
            try row.decode(column: 0, as: Int64.self), try row.decode(column: 1, as: String.self),
            try row.decode(column: 2, as: String.self), try row.decode(column: 3, as: String.self),
            try row.decode(column: 4, as: String.self), try row.decode(column: 5, as: Int64.self),
            try row.decode(column: 6, as: Int64.self), try row.decode(column: 7, as: String.self),
            try row.decode(column: 8, as: String.self), try row.decode(column: 9, as: Date?.self),
            try row.decode(column: 10, as: Int32.self), try row.decode(column: 11, as: Date.self),
            try row.decode(column: 12, as: Date.self)
        )
    }

    /// Inserts a dossier and its fee lines; the amount due is their total.
    public static func insertDossier(
        code: DossierCode, agencyID: Int64, details: DossierDetails, amountDue: Money, payToken: String,
        on db: PostgresConnection
    ) async throws -> Int64 {
        let rows = try await db.query("""
            INSERT INTO dossiers (code, agency_id, procedure_code, procedure_name, applicant_name, amount_due, pay_token)
            VALUES (\(code.rawValue), \(agencyID), \(details.procedureCode), \(details.procedureName),
                    \(details.applicantName), \(amountDue.dong), \(payToken))
            RETURNING id
            """)
        let id = try rows[0].decode(Int64.self)
        try await insertFeeLines(details.feeLines, dossierID: id, on: db)
        return id
    }

    /// Replaces a dossier's details and fee lines (the caller checked they may still change).
    public static func replaceDetails(
        dossierID: Int64, details: DossierDetails, amountDue: Money, on db: PostgresConnection
    ) async throws {
        try await db.execute("""
            UPDATE dossiers SET procedure_code = \(details.procedureCode), procedure_name = \(details.procedureName),
                applicant_name = \(details.applicantName), amount_due = \(amountDue.dong),
                version = version + 1, updated_at = now()
            WHERE id = \(dossierID) AND fees_frozen_at IS NULL
            """)
        try await db.execute("DELETE FROM dossier_fee_lines WHERE dossier_id = \(dossierID)")
        try await insertFeeLines(details.feeLines, dossierID: dossierID, on: db)
    }

    private static func insertFeeLines(_ lines: [FeeLine], dossierID: Int64, on db: PostgresConnection) async throws {
        let numbers = lines.indices.map { Int16($0 + 1) }
        try await db.execute("""
            INSERT INTO dossier_fee_lines (dossier_id, line_no, kind, code, name, amount)
            SELECT \(dossierID), n, k, c, nm, a
            FROM unnest(\(numbers), \(lines.map(\.kind.rawValue)), \(lines.map(\.code)), \(lines.map(\.name)),
                        \(lines.map(\.amount.dong))) AS l(n, k, c, nm, a)
            """)
    }

    /// What a payment change did to its dossier.
    public struct Coverage: Sendable {
        public var code: DossierCode
        public var agencyID: Int64
        public var amountDue: Money
        public var paid: Money
        public var before: DossierStatus
        public var status: DossierStatus
    }

    /// Recomputes what succeeded payments brought in (net of refunds) and returns the dossier's
    /// status before and after. Runs in the transaction that changed a payment.
    public static func recomputePaid(dossierID: Int64, on db: PostgresConnection) async throws -> Coverage {
        guard let coverage = try await recomputePaid(dossierIDs: [dossierID], on: db)[dossierID] else {
            throw StoredValue.Corrupt(what: "dossier \(dossierID)")
        }
        return coverage
    }

    /// `recomputePaid` for many dossiers; returns each one's coverage by dossier id.
    ///
    /// Two statements, not one: the dossiers are locked first (in id order), and only then are
    /// their payments summed. Under READ COMMITTED a statement sees the rows committed when it
    /// began, so a sum taken in the statement that waits for the lock would miss a payment that
    /// the transaction holding the lock commits meanwhile — two concurrent successes for one
    /// dossier would each count one, and the dossier would say paid instead of overpaid.
    public static func recomputePaid(dossierIDs: [Int64], on db: PostgresConnection) async throws -> [Int64: Coverage] {
        guard !dossierIDs.isEmpty else { return [:] }
        var before: [Int64: DossierStatus] = [:]
        for row in try await db.query("SELECT id, status FROM dossiers WHERE id = ANY(\(dossierIDs)) ORDER BY id FOR UPDATE") {
            let (id, status) = try row.decode((Int64, String).self)
            before[id] = try StoredValue.dossierStatus(status)
        }
        let rows = try await db.query("""
            WITH p AS (SELECT dossier_id, COALESCE(sum(amount - amount_refunded), 0)::bigint AS total FROM payment_intents
                       WHERE dossier_id = ANY(\(dossierIDs))
                         AND status IN ('succeeded', 'refund_pending', 'partially_refunded')
                       GROUP BY dossier_id)
            UPDATE dossiers d SET amount_paid = COALESCE(p.total, 0), version = d.version + 1, updated_at = now(),
                fees_frozen_at = CASE WHEN COALESCE(p.total, 0) > 0 THEN COALESCE(d.fees_frozen_at, now()) ELSE d.fees_frozen_at END
            FROM (SELECT unnest(\(dossierIDs)) AS id) AS target LEFT JOIN p ON p.dossier_id = target.id
            WHERE d.id = target.id
            RETURNING d.id, d.code, d.agency_id, d.amount_due, d.amount_paid, d.status
            """)
        var coverage: [Int64: Coverage] = [:]
        for row in rows {
            let (id, code, agency, due, paid, status) = try row.decode((Int64, String, Int64, Int64, Int64, String).self)
            guard let was = before[id] else { throw StoredValue.Corrupt(what: "dossier \(id)") }
            coverage[id] = Coverage(
                code: try StoredValue.dossierCode(code), agencyID: agency, amountDue: Money(dong: due), paid: Money(dong: paid),
                before: was, status: try StoredValue.dossierStatus(status))
        }
        return coverage
    }

    /// Sets where an agency's one-stop system receives notifications.
    public static func setNotifyURL(agencyID: Int64, url: String?, on db: PostgresConnection) async throws {
        try await db.execute("UPDATE agencies SET notify_url = \(url) WHERE id = \(agencyID)")
    }
}

/// Turns stored text back into validated domain values; a failure means the database holds
/// something no code path writes.
enum StoredValue {
    struct Corrupt: Error, CustomStringConvertible {
        var what: String
        var description: String { "stored \(what) is not valid" }
    }

    /// The value `text` stands for, or `Corrupt` naming `what` it should have been.
    static func value<Value: RawRepresentable>(_ text: String, _ what: String) throws -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: text) else { throw Corrupt(what: what) }
        return value
    }

    static func agencyCode(_ text: String) throws -> AgencyCode { try value(text, "agency code") }
    static func dossierCode(_ text: String) throws -> DossierCode { try value(text, "dossier code") }
    static func partner(_ text: String) throws -> PartnerCode { try value(text, "partner code") }
    static func reference(_ text: String) throws -> PaymentReference { try value(text, "payment reference") }
    static func dossierStatus(_ text: String) throws -> DossierStatus { try value(text, "dossier status") }
    static func intentStatus(_ text: String) throws -> IntentStatus { try value(text, "intent status") }
}
