import ArgumentParser
import Foundation
import Signing

/// `feerecon-bench callback-ingest`: plays the gateway's callback sender (PROTOCOL.md §3) at a
/// fixed number of concurrent connections. Each request is a `KETQUA 00` result for the next
/// pending intent of the intents file, under a unique `webhook-id`; a share of the requests
/// instead resend an already answered `webhook-id` (same event, `LanGui` 2, its own signature),
/// which must be answered with the stored reply byte for byte. Every request is built and signed
/// before the measured period starts (the generator shares the machine with the service, so
/// signing during the run would take from what is measured); a run is seconds long, well within
/// the five minutes a signature's timestamp stays valid (PROTOCOL.md §3). Every reply's signature is checked. Prints one `RESULT` line with the number of
/// unique callbacks acknowledged (`accepted`) and of duplicates answered with the stored reply.
///
/// Sent over `RawHTTPLoad` (one epoll thread, kept-alive connections) rather than the CurlHTTP
/// client: at several thousand requests a second on two shared cores, the generator's own cost
/// per request is taken from the system under test, and this one's is a fraction of libcurl's.
struct CallbackIngest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "callback-ingest",
        abstract: "Send signed result callbacks to the service at a fixed concurrency.")

    @Option(help: "The service's base URL, http://127.0.0.1:<port>.")
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

    @Option(help: "Seconds an answer may take after the end before it counts as failed.")
    var timeout = 30.0

    @Option(help: "webhook-id prefix (alphanumerics), unique per run.")
    var tag = "run"

    func validate() throws {
        guard (1...1000).contains(connections) else { throw ValidationError("--connections must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
        guard (0..<1).contains(duplicates) else { throw ValidationError("--duplicates must be 0 ≤ rate < 1") }
        guard StandardWebhooks.isValidMessageID("cb_\(tag)_0000000000") else { throw ValidationError("--tag: alphanumerics only") }
        guard loopbackPort(url) != nil else { throw ValidationError("--url must be http://127.0.0.1:<port>") }
    }

    /// A unique callback once answered: what a duplicate must get again.
    struct Answered {
        var item: Int
        var reply: [UInt8]
    }

    func run() throws {
        let key = try WebhookSecret(try readSecretArgument(secret))
        let signer = WebhookSigner(secret: key)
        let verifier = WebhookVerifier(secret: key)
        let intents = try RecordFile(path: intentsFile)
        guard intents.count > offset else { throw ValidationError("no intents left after --offset \(offset)") }
        let port = loopbackPort(url)!
        let success = Array(#""MaLoi":"00""#.utf8)
        let available = intents.count - offset
        var generator = SplitMix64(seed: 0x5EED)
        var answered: [Answered] = []
        var accepted = 0, duplicatesSent = 0, replayed = 0

        func body(_ item: Int, attempt: Int) -> [UInt8] {
            let fields = intents.fields(offset + item)
            return Array("""
                {"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"\(partner)","MaThamChieu":"\(fields[0])",\
                "MaGiaoDich":"\(fields[1])","SoTien":\(fields[2]),"MaTienTe":"VND","MaNganHang":"VCB",\
                "ThoiGianGD":"20240101101500","ThongTinGiaoDich":"Thanh toan le phi ho so \(fields[3])",\
                "MaHoSo":"\(fields[3])","LanGui":\(attempt)}
                """.utf8)
        }

        func request(_ item: Int, attempt: Int) -> [UInt8] {
            let payload = body(item, attempt: attempt)
            var headers = signer.headers(for: payload, id: "cb_\(tag)_\(item)").fields.map { ($0.name, $0.value) }
            headers.append(("x-partner-code", partner))
            headers.append(("content-type", "application/json"))
            return RawHTTPLoad.request(method: "POST", path: "/v1/callbacks/portal", port: port, headers: headers, body: payload)
        }
        // More than the service can take in `duration` (the run ends when time is up, not when
        // these run out), each in both of its deliveries.
        let prepared = min(available, Int(duration * 12_000) + 1_000)
        let firsts = (0..<prepared).map { request($0, attempt: 1) }
        let resends = (0..<prepared).map { request($0, attempt: 2) }
        let items = ItemSource(count: prepared)

        let report = try RawHTTPLoad.run(port: port, connections: connections, duration: duration, timeout: timeout) { _ in
            let duplicate = !answered.isEmpty && Double.random(in: 0..<1, using: &generator) < duplicates
            let item: Int
            let stored: [UInt8]?
            if duplicate {
                let pick = answered[Int.random(in: 0..<answered.count, using: &generator)]
                (item, stored) = (pick.item, pick.reply)
                duplicatesSent += 1
            } else {
                guard let next = items.take() else { return nil }
                (item, stored) = (next, nil)
            }
            let bytes = duplicate ? resends[item] : firsts[item]
            return RawRequest(bytes: bytes) { response in
                do throws(WebhookVerificationError) {
                    _ = try verifier.verify(headers: { response[header: $0] }, body: response.body)
                } catch {
                    return .unexpected("reply signature: \(error.code)")
                }
                guard response.status == 200 else { return .unexpected("HTTP \(response.status)") }
                if let stored {
                    guard response.body == stored else { return .unexpected("duplicate not answered with the stored reply") }
                    replayed += 1
                } else {
                    guard response.body.contains(subsequence: success) else { return .unexpected("first delivery not 00") }
                    accepted += 1
                    answered.append(Answered(item: item, reply: response.body))
                    if answered.count > 4096 { answered.removeFirst(1024) }
                }
                return .ok
            }
        }
        print(report.line([
            ("connections", "\(connections)"), ("accepted", "\(accepted)"), ("duplicates_sent", "\(duplicatesSent)"),
            ("duplicates_replayed", "\(replayed)"),
            ("accepted_per_s", String(format: "%.1f", Double(accepted) / max(report.seconds, 1e-9))),
        ]))
        report.printProblems()
    }
}

/// The port of `http://127.0.0.1:<port>` (the raw load generator speaks to loopback only).
func loopbackPort(_ url: String) -> Int? {
    var text = url
    if text.hasSuffix("/") { text.removeLast() }
    guard text.hasPrefix("http://127.0.0.1:"), let port = Int(text.dropFirst("http://127.0.0.1:".count)), (1...65535).contains(port) else {
        return nil
    }
    return port
}
