#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The control API under `/sandbox` (JSON, loopback peers only): tests and drills choose
/// outcomes, end refunds, switch faults and read the gateway's truth without a browser.
struct ControlRoutes: Sendable {
    let engine: SandboxEngine

    func register(on router: Router<SandboxRequestContext>) {
        let group = router.group("sandbox").add(middleware: LoopbackOnlyMiddleware())

        group.post("transactions/:id/outcome") { request, context in
            try await self.run(request, context) { body in
                let choice = try Self.decode(OutcomeChoice.self, body)
                guard let outcome = PaymentOutcome(name: choice.outcome) else {
                    throw ControlError(400, "outcome must be one of success, cancel, insufficient-funds, expired, reversed (or 00, 24, 51, 11, 07)")
                }
                return try await self.outcomeResponse(
                    engine.choose(outcome, transactionID: try Self.id(context), at: try Self.time(choice.at)))
            }
        }
        group.post("transactions/:id/reverse") { request, context in
            try await self.run(request, context) { body in
                let at = try Self.decode(TimeChoice.self, body, allowEmpty: true).at
                return try await self.outcomeResponse(engine.reverse(transactionID: try Self.id(context), at: try Self.time(at)))
            }
        }
        group.post("transactions/:id/expire") { request, context in
            try await self.run(request, context) { body in
                let at = try Self.decode(TimeChoice.self, body, allowEmpty: true).at
                return try await self.outcomeResponse(engine.expireNow(transactionID: try Self.id(context), at: try Self.time(at)))
            }
        }
        group.post("transactions/:id/late-success") { request, context in
            try await self.run(request, context) { body in
                let at = try Self.decode(TimeChoice.self, body, allowEmpty: true).at
                return try await self.outcomeResponse(engine.lateSuccess(transactionID: try Self.id(context), at: try Self.time(at)))
            }
        }
        group.get("transactions/:id") { request, context in
            try await self.run(request, context) { _ in
                guard let payment = try await engine.store.payment(transactionID: try Self.id(context)),
                      let truth = try await engine.store.truth(
                        partner: payment.partner, reference: payment.reference, after: nil, limit: 1).first
                else { throw ControlError(404, "unknown transaction") }
                return try Self.json(TruthTransaction(truth.0, refunds: truth.1))
            }
        }
        group.post("refunds/:id/complete") { request, context in
            try await self.run(request, context) { body in
                let at = try Self.decode(TimeChoice.self, body, allowEmpty: true).at
                return try await self.refundResponse(
                    engine.finishRefund(refundID: try Self.id(context), status: .completed, at: try Self.time(at)))
            }
        }
        group.post("refunds/:id/reject") { request, context in
            try await self.run(request, context) { body in
                let at = try Self.decode(TimeChoice.self, body, allowEmpty: true).at
                return try await self.refundResponse(
                    engine.finishRefund(refundID: try Self.id(context), status: .rejected, at: try Self.time(at)))
            }
        }
        group.get("truth") { request, context in
            try await self.run(request, context) { _ in
                let q = request.uri.queryParameters
                let limit = min(max(Int(q["limit"].map(String.init) ?? "") ?? 1000, 1), 100_000)
                let rows = try await engine.store.truth(
                    partner: q["partner"].map(String.init), reference: q["reference"].map(String.init),
                    after: q["after"].map(String.init), limit: limit)
                let next = rows.count == limit ? rows.last.map { $0.0.partner + "/" + $0.0.reference } : nil
                return try Self.json(TruthList(transactions: rows.map { TruthTransaction($0.0, refunds: $0.1) }, next: next))
            }
        }
        group.get("callbacks") { request, context in
            try await self.run(request, context) { _ in
                let q = request.uri.queryParameters
                let limit = min(max(Int(q["limit"].map(String.init) ?? "") ?? 1000, 1), 100_000)
                let views = try await engine.store.callbacks(
                    partner: q["partner"].map(String.init), transactionID: q["transaction"].map(String.init),
                    reference: q["reference"].map(String.init), limit: limit)
                return try Self.json(CallbackList(callbacks: views.map(CallbackEntry.init)))
            }
        }
        group.get("settings") { request, context in
            try await self.run(request, context) { _ in try Self.json(engine.settings) }
        }
        group.put("settings") { request, context in
            try await self.run(request, context) { body in
                let decoder = JSONDecoder()
                decoder.userInfo[SandboxSettings.baseKey] = engine.settings
                let settings = try decoder.decode(SandboxSettings.self, from: Data(body))
                return try Self.json(engine.updateSettings { $0 = settings })
            }
        }
        group.get("faults") { request, context in
            try await self.run(request, context) { _ in try Self.json(engine.settings.faults) }
        }
        group.put("faults") { request, context in
            try await self.run(request, context) { body in
                let faults = try Self.decode(FaultSettings.self, body)
                return try Self.json(engine.updateSettings { $0.faults = faults }.faults)
            }
        }
        group.get("seed") { request, context in
            try await self.run(request, context) { _ in try Self.json(SeedValue(seed: engine.settings.seed)) }
        }
        group.put("seed") { request, context in
            try await self.run(request, context) { body in
                let seed = try Self.decode(SeedValue.self, body).seed
                return try Self.json(SeedValue(seed: engine.updateSettings { $0.seed = seed }.seed))
            }
        }
        group.get("settlement-window") { request, context in
            try await self.run(request, context) { _ in try Self.json(Switch(enabled: engine.settings.settlementWindow)) }
        }
        group.put("settlement-window") { request, context in
            try await self.run(request, context) { body in
                let value = try Self.decode(Switch.self, body).enabled
                return try Self.json(Switch(enabled: engine.updateSettings { $0.settlementWindow = value }.settlementWindow))
            }
        }
        group.get("settlement/:partner/:day") { request, context in
            try await self.run(request, context) { _ in
                let partner = context.parameters.get("partner") ?? ""
                let day = context.parameters.get("day") ?? ""
                guard engine.partners[partner] != nil else { throw ControlError(404, "unknown partner") }
                guard let start = WireTime.parseDay(day) else { throw ControlError(400, "day must be yyyyMMdd") }
                let file = try await engine.settlementFile(partner: partner, day: day, dayStart: start, settings: engine.settings)
                return .bytes(file.bytes, status: 200, contentType: "text/csv; charset=utf-8")
            }
        }
        group.get("stats") { request, context in
            try await self.run(request, context) { _ in try Self.json(StatsView(endpoints: engine.stats.snapshot)) }
        }
        group.delete("stats") { request, context in
            try await self.run(request, context) { _ in
                engine.stats.reset()
                return try Self.json(StatsView(endpoints: [:]))
            }
        }
    }

    // MARK: - Plumbing

    private func run(
        _ request: Request, _ context: SandboxRequestContext, _ body: ([UInt8]) async throws -> Response
    ) async throws -> Response {
        do {
            var request = request
            let buffer = try await request.collectBody(upTo: 65_536)
            return try await body(Array(buffer.readableBytesView))
        } catch let error as ControlError {
            return Self.error(error.status, error.message)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return Self.error(413, "body over 64 KiB")
        } catch is DecodingError {
            return Self.error(400, "invalid JSON body")
        } catch let error as SandboxConfigurationError {
            return Self.error(400, error.description)
        } catch {
            context.logger.error("control request failed", metadata: ["error": "\(error)"])
            return Self.error(500, "internal error")
        }
    }

    private func outcomeResponse(_ result: SandboxEngine.OutcomeResult) async throws -> Response {
        switch result {
        case .notFound: throw ControlError(404, "unknown transaction")
        case .refused(let record):
            return try Self.json(OutcomeReply(applied: false, transaction: try await truth(record)), status: 409)
        case .applied(let record):
            return try Self.json(OutcomeReply(applied: true, transaction: try await truth(record)))
        }
    }

    private func truth(_ record: PaymentRecord) async throws -> TruthTransaction {
        let rows = try await engine.store.truth(partner: record.partner, reference: record.reference, after: nil, limit: 1)
        return rows.first.map { TruthTransaction($0.0, refunds: $0.1) } ?? TruthTransaction(record, refunds: [])
    }

    private func refundResponse(_ result: (RefundRecord, changed: Bool)?) throws -> Response {
        guard let (refund, changed) = result else { throw ControlError(404, "unknown refund") }
        return try Self.json(RefundReply(applied: changed, refund: TruthRefund(refund)), status: changed ? 200 : 409)
    }

    static func id(_ context: SandboxRequestContext) throws -> String {
        let id = context.parameters.get("id") ?? ""
        guard WireParser.isAlphanumeric(id, maxLength: 40) else { throw ControlError(404, "unknown id") }
        return id
    }

    static func time(_ text: String?) throws -> Int64? {
        guard let text else { return nil }
        guard let value = WireTime.parse(text) else { throw ControlError(400, "at must be yyyyMMddHHmmss (Vietnam time)") }
        return value
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], allowEmpty: Bool = false) throws -> T {
        if allowEmpty, body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return try JSONDecoder().decode(T.self, from: Data("{}".utf8))
        }
        return try JSONDecoder().decode(T.self, from: Data(body))
    }

    static func json(_ value: some Encodable, status: Int = 200) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return .bytes(Array(try encoder.encode(value)), status: status, contentType: "application/json")
    }

    static func error(_ status: Int, _ message: String) -> Response {
        var w = JSONWriter()
        w.field("error", message)
        return .bytes(w.finish(), status: status, contentType: "application/json")
    }
}

/// Answers 403 to anyone not on loopback: the control API can move money in the sandbox.
struct LoopbackOnlyMiddleware: RouterMiddleware {
    typealias Context = SandboxRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.isLoopbackPeer else { return ControlRoutes.error(403, "the control API answers loopback peers only") }
        return try await next(request, context)
    }
}

struct ControlError: Error {
    var status: Int
    var message: String
    init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
}

// MARK: - Control API bodies

struct OutcomeChoice: Codable {
    /// `success`, `cancel`, `insufficient-funds`, `expired`, `reversed`, or the `MaLoi` code.
    var outcome: String
    /// Optional outcome time, `yyyyMMddHHmmss` Vietnam time (to build a settlement day in the past).
    var at: String?
}

struct TimeChoice: Codable {
    var at: String?
}

struct SeedValue: Codable {
    var seed: UInt64
}

struct Switch: Codable {
    var enabled: Bool
}

struct OutcomeReply: Codable {
    var applied: Bool
    var transaction: TruthTransaction
}

struct RefundReply: Codable {
    var applied: Bool
    var refund: TruthRefund
}

struct TruthList: Codable {
    var transactions: [TruthTransaction]
    /// Cursor for the next page (`after=`), when the page was full.
    var next: String?
}

/// The gateway's true state of one payment, for comparison with the service's.
struct TruthTransaction: Codable {
    var partner: String
    var reference: String
    var transactionId: String
    var amount: Int64
    var feeAmount: Int64
    var chargeAmount: Int64
    var status: String
    /// `TrangThaiGD` as query and settlement report it.
    var wireStatus: String
    /// The first outcome's `MaLoi` (`00`, `24`, `51`, `11`, `07`).
    var outcomeCode: String?
    var requestedAt: String
    var expiresAt: String
    var outcomeAt: String?
    var laterStatus: String?
    var laterAt: String?
    /// Completed refunds, as `SoTienDaHoan`.
    var refundedAmount: Int64
    var refunds: [TruthRefund]
    var pendingEvent: String?

    init(_ p: PaymentRecord, refunds: [RefundRecord]) {
        partner = p.partner
        reference = p.reference
        transactionId = p.transactionID
        amount = p.amount
        feeAmount = p.feeAmount
        chargeAmount = p.chargeAmount
        status = p.status.rawValue
        wireStatus = p.status.wireStatus
        outcomeCode = p.outcome?.rawValue
        requestedAt = WireTime.format(unixSeconds: p.requestedAt)
        expiresAt = WireTime.format(unixSeconds: p.expiresAt)
        outcomeAt = p.outcomeAt.map(WireTime.format(unixSeconds:))
        laterStatus = p.laterStatus?.rawValue
        laterAt = p.laterAt.map(WireTime.format(unixSeconds:))
        refundedAmount = refunds.filter { $0.status == .completed }.reduce(0) { $0 + $1.amount }
        self.refunds = refunds.map(TruthRefund.init)
        pendingEvent = p.timerEvent?.rawValue
    }
}

struct TruthRefund: Codable {
    var requestId: String
    var refundId: String
    var transactionId: String
    var amount: Int64
    var status: String
    var wireStatus: String
    var outcomeAt: String?

    init(_ r: RefundRecord) {
        requestId = r.requestID
        refundId = r.refundID
        transactionId = r.transactionID
        amount = r.amount
        status = r.status.rawValue
        wireStatus = r.status.wireStatus
        outcomeAt = r.outcomeAt.map(WireTime.format(unixSeconds:))
    }
}

struct CallbackList: Codable {
    var callbacks: [CallbackEntry]
}

struct CallbackEntry: Codable {
    struct Attempt: Codable {
        var attempt: Int64
        var webhookTimestamp: Int64
        var startedAtMilliseconds: Int64
        var latencyMilliseconds: Int64
        var httpStatus: Int64?
        var resultCode: String?
        var outcome: String
        var tampered: Bool
    }

    var id: Int64
    var webhookId: String
    var partner: String
    var transactionId: String
    var reference: String
    var refundId: String?
    var kind: String
    var resultCode: String
    var url: String
    var state: String
    var attempts: Int64
    var maxAttempts: Int64
    var nextAttemptAtMilliseconds: Int64?
    var faults: [String]
    var isDuplicate: Bool
    var createdAtMilliseconds: Int64
    var finishedAtMilliseconds: Int64?
    var attemptLog: [Attempt]

    init(_ v: SandboxStore.CallbackView) {
        id = v.id
        webhookId = v.webhookID
        partner = v.partner
        transactionId = v.transactionID
        reference = v.reference
        refundId = v.refundID
        kind = v.kind
        resultCode = v.resultCode
        url = v.url
        state = v.state
        attempts = v.attempts
        maxAttempts = v.maxAttempts
        nextAttemptAtMilliseconds = v.state == "pending" ? v.nextMilliseconds : nil
        faults = v.faults.isEmpty ? [] : v.faults.split(separator: ",").map(String.init)
        isDuplicate = v.isDuplicate
        createdAtMilliseconds = v.createdMilliseconds
        finishedAtMilliseconds = v.finishedMilliseconds
        attemptLog = v.attemptLog.map {
            Attempt(
                attempt: $0.attempt, webhookTimestamp: $0.webhookTimestamp, startedAtMilliseconds: $0.startedMilliseconds,
                latencyMilliseconds: $0.latencyMilliseconds, httpStatus: $0.httpStatus, resultCode: $0.resultCode,
                outcome: $0.outcome, tampered: $0.tampered)
        }
    }
}

struct StatsView: Codable {
    var endpoints: [String: SandboxStats.Entry]
}
