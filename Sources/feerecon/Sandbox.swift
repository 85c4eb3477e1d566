import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GatewaySandbox
import Hummingbird
import Logging
import Postgres

/// `feerecon sandbox`: runs the gateway sandbox (the server side of PROTOCOL.md) by itself.
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run the payment gateway sandbox: the national portal's side of PROTOCOL.md, with fault injection.",
        discussion: """
            The sandbox answers the signed endpoints under /ppdvcqg/v1 (create, query, refund, \
            settlement file), serves the hosted payment page, delivers signed callbacks with \
            retries, and keeps its own truth in its own PostgreSQL database (never the \
            service's). Its schema is created at startup.

            Run it by itself, e.g.:

              createdb feerecon_sandbox
              export FEERECON_SANDBOX_PARTNERS='BTH=whsec_<base64 of 24-64 random bytes>'
              feerecon sandbox --database-url postgresql://postgres@127.0.0.1:5432/feerecon_sandbox \\
                --listen 127.0.0.1:8090 --callback-interval 5s --callback-attempts 5

            Partners and their keys come from --partner (repeatable), --partners-file (one \
            CODE=whsec_...[,whsec_...] per line, # comments) and FEERECON_SANDBOX_PARTNERS \
            (entries separated by ';' or newlines). The first key of a partner signs; any of \
            its keys verifies (rotation). Keys are never printed or logged; prefer the file or \
            the environment to the command line, which other users can see.

            The control API (JSON, loopback peers only) lives under /sandbox: choose an \
            outcome (POST /sandbox/transactions/{MaGiaoDich}/outcome {"outcome":"success"}), \
            reverse, expire, late-success, complete or reject refunds, read the truth \
            (GET /sandbox/truth), callback attempts (GET /sandbox/callbacks), faults, seed, \
            settings, settlement window and per-endpoint stats (GET /sandbox/stats). See the \
            README's "Gateway sandbox" section.

            Durations take a unit: 100ms, 5s, 5m, 1h (a bare number is seconds). Rates are \
            probabilities from 0 to 1, decided per event from a hash of the seed and the \
            event, so the same seed and references give the same faults.
            """)

    // MARK: Server

    @Option(name: .long, help: ArgumentHelp("Address to listen on, host:port (port 0 picks a free port).", valueName: "host:port"))
    var listen = "127.0.0.1:8090"

    @Option(name: .long, help: ArgumentHelp(
        "The sandbox's own database (never the service's). Default: $FEERECON_SANDBOX_DATABASE_URL.", valueName: "url"))
    var databaseURL: String?

    @Option(name: .long, help: ArgumentHelp("Database connections at most.", valueName: "n"))
    var databasePoolSize = 8

    @Option(name: .long, help: ArgumentHelp(
        "A partner and its keys, CODE=whsec_...[,whsec_...]; repeatable. The first key signs.", valueName: "partner"))
    var partner: [String] = []

    @Option(name: .long, help: ArgumentHelp("File with one CODE=whsec_...[,whsec_...] per line.", valueName: "path"))
    var partnersFile: String?

    @Option(name: .long, help: ArgumentHelp(
        "Base URL of payment links (DuongDanThanhToan). Default: http://<listen address>.", valueName: "url"))
    var publicURL: String?

    @Option(name: .long, help: ArgumentHelp("Seed of every seeded choice: transaction ids, banks, fault decisions.", valueName: "n"))
    var seed: UInt64 = 1

    @Option(name: .long, help: ArgumentHelp("Payment window when a request sends no HanThanhToan.", valueName: "duration"))
    var paymentWindow = "15m"

    @Option(name: .long, help: ArgumentHelp("Settlement rows' beneficiary account (TKThuHuong).", valueName: "account"))
    var beneficiaryAccount = "0123456789"

    @Option(name: .long, help: ArgumentHelp("Settlement rows' beneficiary bank (MaNHThuHuong).", valueName: "code"))
    var beneficiaryBank = "VCB"

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    // MARK: Callbacks and refunds

    @Option(name: .long, help: ArgumentHelp("Delivery attempts per callback event, the first included.", valueName: "n"))
    var callbackAttempts: Int64 = 10

    @Option(name: .long, help: ArgumentHelp("Time between callback attempts.", valueName: "duration"))
    var callbackInterval = "5m"

    @Option(name: .long, help: ArgumentHelp("Time one callback attempt may take.", valueName: "duration"))
    var callbackTimeout = "10s"

    @Flag(inversion: .prefixedNo, help: "Hold each day's settlement file until 06:00 Vietnam time the next day (--no-settlement-window serves any day at once).")
    var settlementWindow = true

    @Option(name: .long, help: ArgumentHelp("How refunds end by themselves: complete, reject or manual (control API only).", valueName: "mode"))
    var refundOutcome = "complete"

    @Option(name: .long, help: ArgumentHelp("Time from refund acceptance to its outcome (complete/reject).", valueName: "duration"))
    var refundDelay = "5s"

    @Option(name: .long, help: ArgumentHelp(
        "Auto-pay for load tests: success, cancel, insufficient-funds, expired or reversed.", valueName: "outcome"))
    var autoOutcome: String?

    @Option(name: .long, help: ArgumentHelp("Delay from creation to the auto outcome.", valueName: "duration"))
    var autoOutcomeDelay = "100ms"

    // MARK: Faults

    @Option(name: .long, help: ArgumentHelp("Rate of callbacks delivered twice with the same webhook-id.", valueName: "rate"))
    var faultDuplicate = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of callbacks held back so later ones overtake them.", valueName: "rate"))
    var faultReorder = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of callbacks delivered late.", valueName: "rate"))
    var faultDelay = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of callbacks never delivered (heal by query).", valueName: "rate"))
    var faultDrop = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of callbacks whose first attempt has a corrupted signature.", valueName: "rate"))
    var faultTamperSignature = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of callbacks whose SoTien differs from the truth.", valueName: "rate"))
    var faultChangeAmount = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of successes reversed after their callback (query/settlement say 04).", valueName: "rate"))
    var faultReverseAfterSuccess = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of expiries followed by a late success callback.", valueName: "rate"))
    var faultLateSuccess = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of settlement rows with a changed amount (file stays consistent).", valueName: "rate"))
    var faultSettlementAmount = 0.0
    @Option(name: .long, help: ArgumentHelp("Rate of settlement files with a broken TONG trailer.", valueName: "rate"))
    var faultSettlementTrailer = 0.0
    @Option(name: .long, help: ArgumentHelp("How late a delayed callback is.", valueName: "duration"))
    var faultDelayBy = "30s"
    @Option(name: .long, help: ArgumentHelp("How long a reordered callback is held.", valueName: "duration"))
    var faultReorderHold = "5s"
    @Option(name: .long, help: ArgumentHelp("How long after the original a duplicate arrives.", valueName: "duration"))
    var faultDuplicateAfter = "1s"
    @Option(name: .long, help: ArgumentHelp("How long after the success a fault reversal happens.", valueName: "duration"))
    var faultReverseAfter = "60s"
    @Option(name: .long, help: ArgumentHelp("How long after the expiry a late success arrives.", valueName: "duration"))
    var faultLateSuccessAfter = "60s"
    @Option(name: .long, help: ArgumentHelp("Đồng by which changed amounts differ.", valueName: "dong"))
    var faultAmountChange: Int64 = 1_000

    func run() async throws {
        let configuration = try makeConfiguration()
        let app = try await buildSandboxApplication(configuration: configuration) { port in
            configuration.logger.notice("gateway sandbox listening", metadata: [
                "address": "\(configuration.host):\(port)", "partners": "\(configuration.partners.map(\.code).joined(separator: ","))",
            ])
        }
        try await app.runService()
    }

    func makeConfiguration() throws -> SandboxConfiguration {
        let environment = ProcessInfo.processInfo.environment
        guard let url = databaseURL ?? environment["FEERECON_SANDBOX_DATABASE_URL"] else {
            throw ValidationError("--database-url (or FEERECON_SANDBOX_DATABASE_URL) is required")
        }
        var database: PostgresConfiguration
        do { database = try PostgresConfiguration(url: url) } catch { throw ValidationError("--database-url: \(error)") }
        database.pool.maximumConnections = databasePoolSize

        var entries = partner
        if let partnersFile {
            guard let data = FileManager.default.contents(atPath: partnersFile) else {
                throw ValidationError("--partners-file: cannot read the file")
            }
            entries += String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        }
        if let text = environment["FEERECON_SANDBOX_PARTNERS"] {
            entries += text.split(whereSeparator: { $0 == ";" || $0.isNewline }).map(String.init)
        }
        var partners: [SandboxPartner] = []
        for entry in entries {
            let trimmed = String(entry.drop(while: { $0 == " " || $0 == "\t" }))
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            do { partners.append(try SandboxPartner(parsing: trimmed)) } catch { throw ValidationError(error.description) }
        }
        guard !partners.isEmpty else {
            throw ValidationError("no partner configured: use --partner, --partners-file or FEERECON_SANDBOX_PARTNERS")
        }
        guard Set(partners.map(\.code)).count == partners.count else {
            throw ValidationError("a partner is configured twice; list all its keys in one entry")
        }

        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port)
        else { throw ValidationError("--listen must be host:port") }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }

        var configuration = SandboxConfiguration(database: database, partners: partners)
        configuration.host = host
        configuration.port = port
        configuration.publicBaseURL = publicURL
        configuration.beneficiaryAccount = beneficiaryAccount
        configuration.beneficiaryBank = beneficiaryBank
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        configuration.logger = Logger(label: "feerecon.sandbox")
        configuration.logger.logLevel = level

        var settings = SandboxSettings()
        settings.seed = seed
        settings.settlementWindow = settlementWindow
        settings.callbackAttempts = callbackAttempts
        settings.callbackIntervalMilliseconds = try Self.milliseconds(callbackInterval, "--callback-interval")
        settings.callbackTimeoutMilliseconds = try Self.milliseconds(callbackTimeout, "--callback-timeout")
        settings.paymentWindowSeconds = try Self.milliseconds(paymentWindow, "--payment-window") / 1000
        guard let mode = RefundMode(rawValue: refundOutcome) else {
            throw ValidationError("--refund-outcome must be complete, reject or manual")
        }
        settings.refundMode = mode
        settings.refundDelayMilliseconds = try Self.milliseconds(refundDelay, "--refund-delay")
        if let autoOutcome {
            guard let outcome = PaymentOutcome(name: autoOutcome) else {
                throw ValidationError("--auto-outcome must be success, cancel, insufficient-funds, expired or reversed")
            }
            settings.autoOutcome = outcome
        }
        settings.autoOutcomeDelayMilliseconds = try Self.milliseconds(autoOutcomeDelay, "--auto-outcome-delay")

        var faults = FaultSettings()
        faults.duplicate = try Self.rate(faultDuplicate, "--fault-duplicate")
        faults.reorder = try Self.rate(faultReorder, "--fault-reorder")
        faults.delay = try Self.rate(faultDelay, "--fault-delay")
        faults.drop = try Self.rate(faultDrop, "--fault-drop")
        faults.tamperSignature = try Self.rate(faultTamperSignature, "--fault-tamper-signature")
        faults.misstatedCallback = try Self.rate(faultChangeAmount, "--fault-change-amount")
        faults.reverseAfterSuccess = try Self.rate(faultReverseAfterSuccess, "--fault-reverse-after-success")
        faults.lateSuccessAfterExpiry = try Self.rate(faultLateSuccess, "--fault-late-success")
        faults.misstatedSettlementRow = try Self.rate(faultSettlementAmount, "--fault-settlement-amount")
        faults.settlementBrokenTrailer = try Self.rate(faultSettlementTrailer, "--fault-settlement-trailer")
        faults.delayMilliseconds = try Self.milliseconds(faultDelayBy, "--fault-delay-by")
        faults.reorderHoldMilliseconds = try Self.milliseconds(faultReorderHold, "--fault-reorder-hold")
        faults.duplicateAfterMilliseconds = try Self.milliseconds(faultDuplicateAfter, "--fault-duplicate-after")
        faults.reverseAfterMilliseconds = try Self.milliseconds(faultReverseAfter, "--fault-reverse-after")
        faults.lateSuccessAfterMilliseconds = try Self.milliseconds(faultLateSuccessAfter, "--fault-late-success-after")
        guard (1...1_000_000_000).contains(faultAmountChange) else { throw ValidationError("--fault-amount-change must be 1 to 10^9") }
        faults.amountChange = faultAmountChange
        settings.faults = faults
        do { try settings.validate() } catch { throw ValidationError(error.description) }
        configuration.settings = settings
        return configuration
    }

    /// `100ms`, `5s`, `5m`, `1h`, or a bare number of seconds, in milliseconds.
    static func milliseconds(_ text: String, _ option: String) throws -> Int64 {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if suffix == "s", text.hasSuffix("ms") { continue }
            guard let value = Int64(text.dropLast(suffix.count)), value >= 0, value <= 86_400_000 / factor * 31 else { break }
            return value * factor
        }
        if let seconds = Int64(text), seconds >= 0, seconds <= 31 * 86_400 { return seconds * 1000 }
        throw ValidationError("\(option): expected a duration such as 100ms, 5s, 5m or 1h")
    }

    static func rate(_ value: FaultSettings.Rate, _ option: String) throws -> FaultSettings.Rate {
        guard value >= 0, value <= 1 else { throw ValidationError("\(option) must be between 0 and 1") }
        return value
    }
}
