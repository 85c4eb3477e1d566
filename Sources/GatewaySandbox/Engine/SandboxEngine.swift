import Cryptography
import Logging
import Postgres
import Signing
import Synchronization

/// One partner's verifier (all its keys) and signer (its current key).
struct PartnerKeys: Sendable {
    var code: String
    var verifier: WebhookVerifier
    var signer: WebhookSigner
}

/// A reply to send: status, content type and body bytes (signed on the way out).
typealias ProtocolReply = StoredReply

extension StoredReply {
    static func json(_ code: ResultCode, _ body: [UInt8]) -> StoredReply {
        StoredReply(status: code.httpStatus, contentType: "application/json", body: body)
    }

    static func rejection(_ r: ProtocolRejection) -> StoredReply { .json(r.code, r.body) }
}

/// The gateway's behaviour: every protocol operation, outcome and timer, over the store.
final class SandboxEngine: Sendable {
    let store: SandboxStore
    let partners: [String: PartnerKeys]
    let clock: SandboxClock
    let logger: Logger
    let beneficiaryAccount: String
    let beneficiaryBank: String
    let stats = SandboxStats()
    /// Set when work for the background workers was just written, so they look at once.
    let timerSignal = WakeSignal()
    let callbackSignal = WakeSignal()
    private let settingsBox: Mutex<SandboxSettings>
    private let publicBase: Mutex<String>
    private let replyIDs = ReplyIDGenerator()

    init(configuration: SandboxConfiguration, store: SandboxStore) {
        self.store = store
        self.clock = configuration.clock
        self.logger = configuration.logger
        self.beneficiaryAccount = configuration.beneficiaryAccount
        self.beneficiaryBank = configuration.beneficiaryBank
        let clock = configuration.clock
        let unixClock: UnixClock = { clock() / 1000 }
        var partners: [String: PartnerKeys] = [:]
        for partner in configuration.partners {
            partners[partner.code] = PartnerKeys(
                code: partner.code,
                verifier: WebhookVerifier(secrets: partner.secrets, clock: unixClock),
                signer: WebhookSigner(secret: partner.secrets[0], clock: unixClock))
        }
        self.partners = partners
        self.settingsBox = Mutex(configuration.settings)
        var base = configuration.publicBaseURL ?? "http://\(configuration.host):\(configuration.port)"
        while base.hasSuffix("/") { base.removeLast() }
        self.publicBase = Mutex(base)
    }

    var settings: SandboxSettings { settingsBox.withLock { $0 } }

    func updateSettings(_ body: (inout SandboxSettings) throws -> Void) rethrows -> SandboxSettings {
        let updated = try settingsBox.withLock { settings in
            try body(&settings)
            return settings
        }
        timerSignal.signal()
        callbackSignal.signal()
        return updated
    }

    /// Called once the server is bound, when no public URL was configured, so links use the real port.
    func setBoundAddress(host: String, port: Int, configured: Bool) {
        guard !configured else { return }
        let shown = host.contains(":") ? "[\(host)]" : host
        publicBase.withLock { $0 = "http://\(shown):\(port)" }
    }

    var publicBaseURL: String { publicBase.withLock { $0 } }

    var choices: SeededChoices { SeededChoices(seed: settings.seed) }

    func newReplyID() -> String { replyIDs.next() }

    // MARK: - §1 Create

    func create(partner: PartnerKeys, webhookID: String, body: [UInt8]) async throws -> ProtocolReply {
        let request: CreateRequest
        do {
            request = try WireParser.create(body, partner: partner.code)
        } catch {
            return try await reject(error, partner: partner.code, webhookID: webhookID)
        }
        let settings = self.settings
        let choices = SeededChoices(seed: settings.seed)
        let now = clock()
        let expiresAt = request.expiresAt ?? request.requestedAt + settings.paymentWindowSeconds
        var timer = (expiresAt * 1000, PaymentTimer.expire)
        if let auto = settings.autoOutcome, now + settings.autoOutcomeDelayMilliseconds < expiresAt * 1000 {
            timer = (now + settings.autoOutcomeDelayMilliseconds, .auto(auto))
        }
        let base = publicBaseURL
        for salt in 0..<8 {
            let transactionID = choices.transactionID(
                partner: request.partner, reference: request.reference, requestedAt: request.requestedAt, salt: salt)
            let record = PaymentRecord(
                transactionID: transactionID, partner: request.partner, reference: request.reference,
                request: request.canonical, amount: request.amount, feeAmount: request.feeAmount,
                chargeAmount: request.chargeAmount, currency: request.currency, description: request.description,
                dossierCode: request.dossierCode, procedureCode: request.procedureCode, returnURL: request.returnURL,
                notifyURL: request.notifyURL, bank: choices.bank(partner: request.partner, reference: request.reference),
                requestedAt: request.requestedAt, expiresAt: expiresAt, createdMilliseconds: now, status: .pending,
                outcome: nil, outcomeAt: nil, laterStatus: nil, laterAt: nil, timerMilliseconds: timer.0,
                timerEvent: timer.1, eventsSent: 0)
            var w = JSONWriter(capacity: 256)
            w.field("MaLoi", ResultCode.success.rawValue)
            w.field("MoTaLoi", ResultCode.success.message)
            w.field("MaThamChieu", request.reference)
            w.field("MaGiaoDich", transactionID)
            w.field("DuongDanThanhToan", base + "/ppdvcqg/v1/thanh-toan/" + transactionID)
            w.field("HanThanhToan", WireTime.format(unixSeconds: expiresAt))
            let reply = w.finish()
            for _ in 0..<3 {
                let outcome: CreateOutcome?
                do {
                    outcome = try await store.createPayment(
                        record, reply: reply, conflictReply: Self.conflictReply, webhookID: webhookID)
                } catch let error as PostgresError where error.isUniqueViolation && error.constraintName == "sandbox_payments_pkey" {
                    break
                }
                switch outcome {
                case .replayed(let stored)?: return stored
                case .created?:
                    if timer.0 <= now + 1000 { timerSignal.signal() }
                    return .json(.success, reply)
                case .sameRequest(let original)?: return .json(.success, original)
                case .conflict?: return .json(.conflictingDuplicate, Self.conflictReply)
                case nil: continue
                }
            }
        }
        logger.error("create gave up: transaction id collisions or a persistent race", metadata: ["partner": "\(partner.code)"])
        return .json(.otherError, ReplyBody.error(.otherError))
    }

    private static let conflictReply = ReplyBody.error(.conflictingDuplicate)

    /// Answers a validation failure: `97` (partner mismatch in the body) is never remembered;
    /// `03`/`04` are final, so an earlier final answer to the same `webhook-id` wins.
    private func reject(_ rejection: ProtocolRejection, partner: String, webhookID: String) async throws -> ProtocolReply {
        let reply = StoredReply.rejection(rejection)
        if rejection.code.isFinalAnswer {
            return try await store.rememberReply(partner: partner, webhookID: webhookID, reply: reply, now: clock()) ?? reply
        }
        return try await store.storedReply(partner: partner, webhookID: webhookID) ?? reply
    }

    /// Remembers a final answer, or returns the one remembered before.
    private func remember(_ reply: ProtocolReply, partner: String, webhookID: String) async throws -> ProtocolReply {
        try await store.rememberReply(partner: partner, webhookID: webhookID, reply: reply, now: clock()) ?? reply
    }

    // MARK: - §4 Query

    func query(partner: PartnerKeys, webhookID: String, body: [UInt8]) async throws -> ProtocolReply {
        let request: QueryRequest
        do {
            request = try WireParser.query(body, partner: partner.code)
        } catch {
            return try await reject(error, partner: partner.code, webhookID: webhookID)
        }
        guard let (payment, refunded) = try await store.payment(partner: request.partner, reference: request.reference) else {
            return try await store.storedReply(partner: partner.code, webhookID: webhookID)
                ?? .json(.transactionNotFound, ReplyBody.error(.transactionNotFound))
        }
        var w = JSONWriter(capacity: 256)
        w.field("MaLoi", ResultCode.success.rawValue)
        w.field("MoTaLoi", ResultCode.success.message)
        w.field("MaThamChieu", payment.reference)
        w.field("MaGiaoDich", payment.transactionID)
        w.field("TrangThaiGD", payment.status.wireStatus)
        w.field("SoTien", payment.amount)
        w.field("SoTienDaHoan", refunded)
        w.field("MaNganHang", Self.bank(of: payment))
        w.field("ThoiGianGD", WireTime.format(unixSeconds: payment.laterAt ?? payment.outcomeAt ?? payment.requestedAt))
        return try await remember(.json(.success, w.finish()), partner: partner.code, webhookID: webhookID)
    }

    /// The payer's bank as the gateway reports it: none while pending, and none for a payer who
    /// cancelled or let the window expire (they never reached a bank).
    static func bank(of payment: PaymentRecord) -> String {
        switch payment.outcome {
        case .success?, .insufficientFunds?, .debitedReversed?: payment.bank
        case .cancelled?, .expired?, nil: payment.laterStatus == .succeeded ? payment.bank : ""
        }
    }

    // MARK: - §5 Refund

    func refund(partner: PartnerKeys, webhookID: String, body: [UInt8]) async throws -> ProtocolReply {
        let request: RefundRequest
        do {
            request = try WireParser.refund(body, partner: partner.code)
        } catch {
            return try await reject(error, partner: partner.code, webhookID: webhookID)
        }
        let settings = self.settings
        let choices = SeededChoices(seed: settings.seed)
        for salt in 0..<8 {
            let refundID = choices.refundID(
                partner: request.partner, requestID: request.requestID, requestedAt: request.requestedAt, salt: salt)
            let now = clock()
            do {
                let reply = try await store.refund(request, webhookID: webhookID, now: now) { payment, active in
                    guard let payment, payment.reference == request.reference else {
                        return .reject(.transactionNotFound, detail: nil)
                    }
                    guard payment.status == .succeeded else { return .reject(.originalNotSuccessful, detail: nil) }
                    let remaining = payment.amount - active
                    guard request.amount <= remaining, request.kind == "03" || request.amount == remaining else {
                        return .reject(.amountMismatch, detail: "SoTienHoan")
                    }
                    let due: (Int64?, RefundStatus?) = switch settings.refundMode {
                    case .complete: (now + settings.refundDelayMilliseconds, .completed)
                    case .reject: (now + settings.refundDelayMilliseconds, .rejected)
                    case .manual: (nil, nil)
                    }
                    var w = JSONWriter(capacity: 128)
                    w.field("MaLoi", ResultCode.success.rawValue)
                    w.field("MoTaLoi", ResultCode.success.message)
                    w.field("MaGiaoDichHoan", refundID)
                    w.field("TrangThaiGD", RefundStatus.pending.wireStatus)
                    let refund = RefundRecord(
                        refundID: refundID, partner: request.partner, requestID: request.requestID,
                        transactionID: payment.transactionID, amount: request.amount, status: .pending,
                        dueMilliseconds: due.0, dueStatus: due.1, outcomeAt: nil, createdMilliseconds: now)
                    return .accept(
                        refund, kind: request.kind, officer: request.officer, reason: request.reason,
                        requestedAt: request.requestedAt, reply: w.finish())
                }
                if settings.refundMode != .manual, settings.refundDelayMilliseconds < 1000 { timerSignal.signal() }
                return reply
            } catch let error as PostgresError where error.isUniqueViolation && error.constraintName == "sandbox_refunds_pkey" {
                continue
            }
        }
        logger.error("refund gave up: refund id collisions", metadata: ["partner": "\(partner.code)"])
        return .json(.otherError, ReplyBody.error(.otherError))
    }

    // MARK: - §6 Settlement

    func settlement(partner: PartnerKeys, webhookID: String, day: String) async throws -> ProtocolReply {
        guard let dayStart = WireTime.parseDay(day) else {
            return try await reject(.malformed("yyyyMMdd"), partner: partner.code, webhookID: webhookID)
        }
        let settings = self.settings
        let availableAt = (dayStart + 86_400 + 6 * 3600) * 1000
        if settings.settlementWindow, clock() < availableAt {
            return try await store.storedReply(partner: partner.code, webhookID: webhookID)
                ?? .json(.transactionNotFound, ReplyBody.error(.transactionNotFound, detail: "file not available yet"))
        }
        let file = try await settlementFile(partner: partner.code, day: day, dayStart: dayStart, settings: settings)
        let reply = StoredReply(status: 200, contentType: "text/csv; charset=utf-8", body: file.bytes)
        return try await remember(reply, partner: partner.code, webhookID: webhookID)
    }

    func settlementFile(partner: String, day: String, dayStart: Int64, settings: SandboxSettings) async throws -> SettlementFile {
        let (payments, refunds) = try await store.settlementData(partner: partner, start: dayStart, end: dayStart + 86_400)
        var byID: [String: PaymentRecord] = [:]
        for p in payments { byID[p.transactionID] = p }
        let missing = Set(refunds.map(\.transactionID)).subtracting(byID.keys)
        for p in try await store.payments(transactionIDs: missing.sorted()) { byID[p.transactionID] = p }
        let settlementPayments = payments.compactMap { p -> SettlementPayment? in
            guard let outcome = p.outcome, let outcomeAt = p.outcomeAt else { return nil }
            return SettlementPayment(
                reference: p.reference, transactionID: p.transactionID, dossierCode: p.dossierCode,
                procedureCode: p.procedureCode, bank: Self.bank(of: p), amount: p.amount, feeAmount: p.feeAmount,
                chargeAmount: p.chargeAmount, currency: p.currency, outcome: outcome, outcomeAt: outcomeAt,
                laterStatus: p.laterStatus, laterAt: p.laterAt)
        }
        let settlementRefunds = refunds.compactMap { r -> SettlementRefund? in
            guard let p = byID[r.transactionID], let at = r.outcomeAt else { return nil }
            return SettlementRefund(
                refundID: r.refundID, reference: p.reference, dossierCode: p.dossierCode, procedureCode: p.procedureCode,
                bank: p.bank, amount: r.amount, currency: p.currency, status: r.status, outcomeAt: at)
        }
        var file = SettlementFile(
            day: day, dayStart: dayStart, partner: partner, account: beneficiaryAccount, accountBank: beneficiaryBank,
            payments: settlementPayments, refunds: settlementRefunds)
        let choices = SeededChoices(seed: settings.seed)
        let faults = settings.faults
        for i in file.rows.indices
        where choices.strikes(.misstatedSettlementRow, rate: faults.misstatedSettlementRow, partner, day, file.rows[i].transactionID) {
            file.changeAmount(ofRowAt: i, by: faults.amountChange)
        }
        if choices.strikes(.settlementBrokenTrailer, rate: faults.settlementBrokenTrailer, partner, day) {
            file.trailerCorruption = faults.amountChange
        }
        return file
    }

    // MARK: - Outcomes

    enum OutcomeResult: Sendable {
        case applied(PaymentRecord)
        /// The payment was not in a state the event applies to; nothing changed.
        case refused(PaymentRecord)
        case notFound
    }

    /// Applies a page button or control API choice. After the payment window, any choice on a
    /// pending payment expires it instead (the window is the gateway's to enforce).
    func choose(_ outcome: PaymentOutcome, transactionID: String, at: Int64? = nil) async throws -> OutcomeResult {
        try await apply(transactionID: transactionID) { record, now in
            if record.status == .pending, now >= record.expiresAt * 1000 {
                return self.change(record, event: .outcome(.expired), at: record.expiresAt, now: now)
            }
            return self.change(record, event: .outcome(outcome), at: at ?? now / 1000, now: now)
        }
    }

    /// Reverses a successful payment (no callback: reconciliation must notice).
    func reverse(transactionID: String, at: Int64? = nil) async throws -> OutcomeResult {
        try await apply(transactionID: transactionID) { record, now in
            self.change(record, event: .reverseAfterSuccess, at: at ?? now / 1000, now: now)
        }
    }

    /// Expires a pending payment now, whatever its window says.
    func expireNow(transactionID: String, at: Int64? = nil) async throws -> OutcomeResult {
        try await apply(transactionID: transactionID) { record, now in
            self.change(record, event: .outcome(.expired), at: at ?? now / 1000, now: now)
        }
    }

    /// Reports a late success for an expired payment (the money moved after all).
    func lateSuccess(transactionID: String, at: Int64? = nil) async throws -> OutcomeResult {
        try await apply(transactionID: transactionID) { record, now in
            self.change(record, event: .lateSuccessAfterExpiry, at: at ?? now / 1000, now: now)
        }
    }

    private func apply(
        transactionID: String, _ decide: @escaping @Sendable (PaymentRecord, Int64) -> PaymentChange?
    ) async throws -> OutcomeResult {
        let now = clock()
        guard let (record, changed) = try await store.updatePayment(transactionID: transactionID, { decide($0, now) }) else {
            return .notFound
        }
        if changed {
            callbackSignal.signal()
            timerSignal.signal()
        }
        return changed ? .applied(record) : .refused(record)
    }

    /// Fires due payment timers: expiries, auto outcomes, fault reversals and late successes.
    func runDuePayments(limit: Int = 500) async throws -> Int {
        let now = clock()
        let claimed = try await store.processDuePayments(now: now, limit: limit) { record in
            var cleared = record
            cleared.timerMilliseconds = nil
            cleared.timerEvent = nil
            let change: PaymentChange? = switch record.timerEvent {
            case .expire?:
                self.change(record, event: .outcome(.expired), at: record.expiresAt, now: now)
            case .auto(let outcome)?:
                now >= record.expiresAt * 1000
                    ? self.change(record, event: .outcome(.expired), at: record.expiresAt, now: now)
                    : self.change(record, event: .outcome(outcome), at: now / 1000, now: now)
            case .reverse?:
                self.change(record, event: .reverseAfterSuccess, at: now / 1000, now: now)
            case .lateSuccess?:
                self.change(record, event: .lateSuccessAfterExpiry, at: now / 1000, now: now)
            case nil:
                nil
            }
            return change ?? PaymentChange(record: cleared, callbacks: [])
        }
        if claimed > 0 { callbackSignal.signal() }
        return claimed
    }

    /// The new state, timer and callbacks of `record` after `event` at `at` (Unix seconds), or
    /// nil when the event does not apply in its state.
    func change(_ record: PaymentRecord, event: PaymentEvent, at: Int64, now: Int64) -> PaymentChange? {
        guard let transition = PaymentStateMachine.transition(from: record.status, firstOutcome: record.outcome, on: event)
        else { return nil }
        let settings = self.settings
        let choices = SeededChoices(seed: settings.seed)
        let faults = settings.faults
        var r = record
        r.status = transition.to
        r.timerMilliseconds = nil
        r.timerEvent = nil
        switch event {
        case .outcome(let outcome):
            r.outcome = outcome
            r.outcomeAt = at
            if outcome == .success, choices.strikes(.reverseAfterSuccess, rate: faults.reverseAfterSuccess, r.partner, r.reference) {
                r.timerMilliseconds = now + faults.reverseAfterMilliseconds
                r.timerEvent = .reverse
            } else if outcome == .expired,
                      choices.strikes(.lateSuccessAfterExpiry, rate: faults.lateSuccessAfterExpiry, r.partner, r.reference) {
                r.timerMilliseconds = now + faults.lateSuccessAfterMilliseconds
                r.timerEvent = .lateSuccess
            }
        case .reverseAfterSuccess, .lateSuccessAfterExpiry:
            r.laterStatus = transition.to
            r.laterAt = at
        }
        var callbacks: [NewCallback] = []
        if let code = transition.callback {
            r.eventsSent += 1
            let prefix = CallbackBody.payment(r, code: code, at: at, amount: r.amount)
            callbacks = makeCallbacks(
                partner: r.partner, transactionID: r.transactionID, reference: r.reference, refundID: nil,
                kind: "KETQUA", code: code, url: r.notifyURL, event: "KETQUA-\(code.rawValue)-\(r.eventsSent)",
                now: now, settings: settings
            ) { changedAmount in
                changedAmount ? CallbackBody.payment(r, code: code, at: at, amount: r.amount + faults.amountChange) : prefix
            }
        }
        return PaymentChange(record: r, callbacks: callbacks)
    }

    /// The delivery rows of one callback event, with the seeded fault decisions taken: dropped,
    /// delayed or held back, first attempt tampered, amount changed, delivered twice.
    func makeCallbacks(
        partner: String, transactionID: String, reference: String, refundID: String?, kind: String, code: ResultCode,
        url: String, event: String, now: Int64, settings: SandboxSettings, body: (_ changedAmount: Bool) -> String
    ) -> [NewCallback] {
        let choices = SeededChoices(seed: settings.seed)
        let f = settings.faults
        func strikes(_ kind: FaultKind, _ rate: Double) -> Bool { choices.strikes(kind, rate: rate, partner, reference, event) }
        var applied: [String] = []
        let drop = strikes(.drop, f.drop)
        let misstated = strikes(.misstatedCallback, f.misstatedCallback)
        let delay = strikes(.delay, f.delay)
        let reorder = strikes(.reorder, f.reorder)
        let tamper = strikes(.tamperSignature, f.tamperSignature)
        let duplicate = strikes(.duplicate, f.duplicate)
        var first = now
        if drop { applied.append("drop") }
        if misstated { applied.append("misstatedCallback") }
        if delay {
            applied.append("delay")
            first += f.delayMilliseconds
        }
        if reorder {
            applied.append("reorder")
            first += f.reorderHoldMilliseconds
        }
        if tamper { applied.append("tamperSignature") }
        if duplicate, !drop { applied.append("duplicate") }
        let webhookID = choices.callbackID(partner: partner, subject: refundID ?? transactionID, event: event)
        let original = NewCallback(
            webhookID: webhookID, partner: partner, transactionID: transactionID, reference: reference, refundID: refundID,
            kind: kind, resultCode: code.rawValue, url: url, bodyPrefix: body(misstated),
            state: drop ? .dropped : .pending, maxAttempts: settings.callbackAttempts,
            intervalMilliseconds: settings.callbackIntervalMilliseconds, nextMilliseconds: drop ? nil : first,
            tamperFirst: tamper, faults: applied.joined(separator: ","), isDuplicate: false, createdMilliseconds: now)
        guard duplicate, !drop else { return [original] }
        var copy = original
        copy.isDuplicate = true
        copy.tamperFirst = false
        copy.nextMilliseconds = first + f.duplicateAfterMilliseconds
        return [original, copy]
    }

    // MARK: - Refund outcomes

    /// Completes or rejects a pending refund now (control API); nil when unknown, unchanged when
    /// it already ended.
    func finishRefund(refundID: String, status: RefundStatus, at: Int64? = nil) async throws -> (RefundRecord, changed: Bool)? {
        let now = clock()
        let results = try await store.updateRefunds(refundID: refundID, dueBefore: now, limit: 1) { refund, payment in
            self.finish(refund, payment: payment, status: status, at: at ?? now / 1000, now: now)
        }
        guard let result = results.first else { return nil }
        if result.changed { callbackSignal.signal() }
        return result
    }

    /// Ends refunds whose delay has passed, as their mode decided.
    func runDueRefunds(limit: Int = 200) async throws -> Int {
        let now = clock()
        let results = try await store.updateRefunds(refundID: nil, dueBefore: now, limit: limit) { refund, payment in
            self.finish(refund, payment: payment, status: refund.dueStatus ?? .completed, at: now / 1000, now: now)
        }
        if !results.isEmpty { callbackSignal.signal() }
        return results.count
    }

    private func finish(
        _ refund: RefundRecord, payment: PaymentRecord, status: RefundStatus, at: Int64, now: Int64
    ) -> (RefundRecord, [NewCallback])? {
        guard refund.status == .pending, status != .pending, let code = status.callbackCode else { return nil }
        var r = refund
        r.status = status
        r.outcomeAt = at
        r.dueMilliseconds = nil
        r.dueStatus = nil
        let settings = self.settings
        let callbacks = makeCallbacks(
            partner: r.partner, transactionID: payment.transactionID, reference: payment.reference, refundID: r.refundID,
            kind: "HOANTIEN", code: code, url: payment.notifyURL, event: "HOANTIEN-\(r.refundID)", now: now,
            settings: settings
        ) { changedAmount in
            CallbackBody.refund(
                r, payment: payment, code: code, at: at,
                paymentAmount: payment.amount + (changedAmount ? settings.faults.amountChange : 0))
        }
        return (r, callbacks)
    }
}

/// The §3 callback bodies, up to and including `"LanGui":`.
enum CallbackBody {
    static func payment(_ p: PaymentRecord, code: ResultCode, at: Int64, amount: Int64) -> String {
        var w = JSONWriter(capacity: 384)
        w.field("LoaiBanTin", "KETQUA")
        common(&w, code: code, p: p, amount: amount, bank: SandboxEngine.bank(of: p), at: at)
        return finish(w)
    }

    static func refund(_ r: RefundRecord, payment p: PaymentRecord, code: ResultCode, at: Int64, paymentAmount: Int64) -> String {
        var w = JSONWriter(capacity: 512)
        w.field("LoaiBanTin", "HOANTIEN")
        common(&w, code: code, p: p, amount: paymentAmount, bank: p.bank, at: at)
        w.field("MaYeuCau", r.requestID)
        w.field("MaGiaoDichHoan", r.refundID)
        w.field("SoTienHoan", r.amount)
        w.field("TrangThaiGD", r.status.wireStatus)
        return finish(w)
    }

    private static func common(_ w: inout JSONWriter, code: ResultCode, p: PaymentRecord, amount: Int64, bank: String, at: Int64) {
        w.field("MaLoi", code.rawValue)
        w.field("MaDoiTac", p.partner)
        w.field("MaThamChieu", p.reference)
        w.field("MaGiaoDich", p.transactionID)
        w.field("SoTien", amount)
        w.field("MaTienTe", p.currency)
        w.field("MaNganHang", bank)
        w.field("ThoiGianGD", WireTime.format(unixSeconds: at))
        w.field("ThongTinGiaoDich", p.description)
        w.field("MaHoSo", p.dossierCode)
    }

    private static func finish(_ w: JSONWriter) -> String {
        String(decoding: w.openBytes, as: UTF8.self) + ",\"LanGui\":"
    }

    /// The body of attempt `attempt`.
    static func body(prefix: String, attempt: Int64) -> [UInt8] {
        Array((prefix + String(attempt) + "}").utf8)
    }
}

/// Fresh reply `webhook-id`s: a random per-process prefix and a counter, cheap and unique.
final class ReplyIDGenerator: Sendable {
    private let prefix: String
    private let counter = Atomic<Int64>(0)

    init() {
        prefix = "rp_" + SecureRandom.string(length: 12, alphabet: SecureRandom.alphanumeric) + "_"
    }

    func next() -> String {
        prefix + String(counter.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}

/// A flag that background workers poll between naps, so new work is picked up within one nap.
final class WakeSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    func signal() { flag.store(true, ordering: .releasing) }

    /// Sleeps until `deadline` (ms, per `clock`) or until signalled, in naps of `nap` ms; returns early on cancellation.
    func wait(until deadline: Int64, clock: SandboxClock, nap: Int64 = 10) async {
        var remaining = 100_000
        while remaining > 0, !Task.isCancelled {
            remaining -= 1
            if flag.exchange(false, ordering: .acquiringAndReleasing) { return }
            let left = deadline - clock()
            if left <= 0 { return }
            try? await Task.sleep(for: .milliseconds(min(nap, left)))
        }
    }
}
