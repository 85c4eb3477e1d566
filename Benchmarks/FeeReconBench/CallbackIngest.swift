import ArgumentParser
import CurlHTTP
import Foundation
import Signing
import Synchronization

/// `feerecon-bench callback-ingest`: plays the gateway's callback sender (PROTOCOL.md §3) at a
/// fixed number of concurrent connections. Each request is a `KETQUA 00` result for the next
/// pending intent of the intents file, under a unique `webhook-id`, signed on the fly (so every
/// signature is fresh); a share of the requests instead resend an already answered `webhook-id`
/// (same event, `LanGui` 2, signed afresh), which must be answered with the stored reply byte
/// for byte. Every reply's signature is checked. Prints one `RESULT` line with the number of
/// unique callbacks acknowledged (`accepted`) and of duplicates answered with the stored reply.
struct CallbackIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "callback-ingest",
        abstract: "Send signed result callbacks to the service at a fixed concurrency.")

    @Option(help: "The service's base URL, e.g. http://127.0.0.1:8080.")
    var url: String

    @Option(help: "Partner code (MaDoiTac).")
    var partner = "BTH"

    @Option(help: "The partner's whsec_ secret, or @file to read it from.")
    var secret: String

    @Option(name: .customLong("intents-file"), help: "Pending intents, one a line: reference, gateway txn, amount, dossier code (tab-separated).")
    var intentsFile: String

    @Option(help: "First line of the intents file to use (so that runs use disjoint intents).")
    var offset = 0

    @Option(help: "Concurrent connections.")
    var connections = 64

    @Option(help: "Measured seconds.")
    var duration = 20.0

    @Option(help: "Share of requests that resend an already answered webhook-id.")
    var duplicates = 0.2

    @Option(help: "Seconds one request may take before it counts as failed.")
    var timeout = 30.0

    @Option(help: "webhook-id prefix (alphanumerics), unique per run.")
    var tag = "run"

    func validate() throws {
        guard (1...1000).contains(connections) else { throw ValidationError("--connections must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
        guard (0..<1).contains(duplicates) else { throw ValidationError("--duplicates must be 0 ≤ rate < 1") }
        guard StandardWebhooks.isValidMessageID("cb_\(tag)_0000000000") else { throw ValidationError("--tag: alphanumerics only") }
    }

    /// A unique callback once answered: what a duplicate must get again.
    struct Answered {
        var item: Int
        var reply: [UInt8]
    }

    struct WorkerState {
        var generator: SplitMix64
        var answered: [Answered] = []
    }

    func run() async throws {
        let key = try WebhookSecret(try readSecretArgument(secret))
        let signer = WebhookSigner(secret: key)
        let verifier = WebhookVerifier(secret: key)
        let intents = try RecordFile(path: intentsFile)
        let offset = self.offset
        guard intents.count > offset else { throw ValidationError("no intents left after --offset \(offset)") }
        let client = try makeLoadClient(connections: connections, timeout: timeout)
        let endpoint = (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/v1/callbacks/portal"
        let success = Array(#""MaLoi":"00""#.utf8)
        let (partner, tag, duplicates) = (self.partner, self.tag, self.duplicates)
        let outcomes = Counters()

        @Sendable func body(_ item: Int, attempt: Int) -> [UInt8] {
            let fields = intents.fields(offset + item)
            return Array("""
                {"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"\(partner)","MaThamChieu":"\(fields[0])",\
                "MaGiaoDich":"\(fields[1])","SoTien":\(fields[2]),"MaTienTe":"VND","MaNganHang":"VCB",\
                "ThoiGianGD":"20240101101500","ThongTinGiaoDich":"Thanh toan le phi ho so \(fields[3])",\
                "MaHoSo":"\(fields[3])","LanGui":\(attempt)}
                """.utf8)
        }

        let report = await runClosedLoop(
            concurrency: connections, duration: duration, items: ItemSource(count: intents.count - offset),
            makeState: { worker in WorkerState(generator: SplitMix64(seed: UInt64(worker) &* 0x9E37_79B9 &+ 7)) },
            step: { state, items in
                let duplicate = !state.answered.isEmpty && Double.random(in: 0..<1, using: &state.generator) < duplicates
                let item: Int
                let stored: [UInt8]?
                if duplicate {
                    let pick = state.answered[Int.random(in: 0..<state.answered.count, using: &state.generator)]
                    (item, stored) = (pick.item, pick.reply)
                    outcomes.duplicateSent()
                } else {
                    guard let next = items.take() else { return nil }
                    (item, stored) = (next, nil)
                }
                let payload = body(item, attempt: duplicate ? 2 : 1)
                var headers = HTTPHeaders()
                for field in signer.headers(for: payload, id: "cb_\(tag)_\(item)").fields {
                    headers.add(name: field.name, value: field.value)
                }
                headers.add(name: "x-partner-code", value: partner)
                headers.add(name: "content-type", value: "application/json")
                let response: HTTPClientResponse
                do {
                    response = try await client.execute(HTTPClientRequest(method: .post, url: endpoint, headers: headers, body: payload))
                } catch {
                    return .failed(describe(error))
                }
                if let problem = replySignatureProblem(response, verifier) { return .unexpected("reply signature: \(problem)") }
                guard response.status == 200 else { return .unexpected("HTTP \(response.status)") }
                if let stored {
                    guard response.body == stored else { return .unexpected("duplicate not answered with the stored reply") }
                    outcomes.replayed()
                } else {
                    guard response.body.contains(subsequence: success) else { return .unexpected("first delivery not 00") }
                    outcomes.accepted()
                    state.answered.append(Answered(item: item, reply: response.body))
                    if state.answered.count > 4096 { state.answered.removeFirst(1024) }
                }
                return .ok
            })
        await client.shutdown()
        let (accepted, duplicatesSent, replayed) = outcomes.values
        print(report.line([
            ("connections", "\(connections)"), ("accepted", "\(accepted)"), ("duplicates_sent", "\(duplicatesSent)"),
            ("duplicates_replayed", "\(replayed)"),
            ("accepted_per_s", String(format: "%.1f", Double(accepted) / max(report.seconds, 1e-9))),
        ]))
        report.printProblems()
    }
}

/// Totals shared by the workers, read once at the end.
final class Counters: Sendable {
    private let counts = Mutex<(accepted: Int, duplicatesSent: Int, replayed: Int)>((0, 0, 0))

    /// A unique callback was acknowledged with `00`.
    func accepted() { counts.withLock { $0.accepted += 1 } }
    /// A duplicate was sent (whatever its answer).
    func duplicateSent() { counts.withLock { $0.duplicatesSent += 1 } }
    /// A duplicate got the stored reply again.
    func replayed() { counts.withLock { $0.replayed += 1 } }

    /// Accepted, duplicates sent, duplicates replayed.
    var values: (Int, Int, Int) { counts.withLock { ($0.accepted, $0.duplicatesSent, $0.replayed) } }
}
