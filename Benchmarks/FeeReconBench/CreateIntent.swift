import ArgumentParser
import Foundation
import Signing

/// `feerecon-bench create-intent`: N concurrent API clients each create a payment intent for
/// their next dossier (`POST /v1/dossiers/{code}/payment-intents` with a fresh Idempotency-Key),
/// one request after another, for a fixed time. An answer counts when it is `201` with the
/// intent `pending` (the gateway accepted it). Prints one `RESULT` line.
///
/// Sent over `RawHTTPLoad` (one epoll thread, one kept-alive connection per client) rather than
/// the CurlHTTP client or wrk: its cost per request is a fraction of libcurl's, which matters on
/// two cores shared with the service, the sandbox and PostgreSQL, and unlike wrk it needs no
/// script for per-request URLs and keys and checks every answer.
struct CreateIntent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-intent",
        abstract: "Create payment intents through the service's API at a fixed concurrency.")

    @Option(help: "The service's base URL, http://127.0.0.1:<port>.")
    var url: String

    @Option(name: .customLong("api-key"), help: "The API key, or @file to read it from.")
    var apiKey: String

    @Option(name: .customLong("dossiers-file"), help: "Dossier codes, one a line; each is used once.")
    var dossiersFile: String

    @Option(help: "First line of the dossiers file to use (so that runs use disjoint dossiers).")
    var offset = 0

    @Option(help: "Concurrent clients, each on its own connection.")
    var concurrency = 16

    @Option(help: "Measured seconds.")
    var duration = 10.0

    @Option(help: "Seconds an answer may take after the end before it counts as failed.")
    var timeout = 30.0

    @Option(help: "Idempotency-Key prefix, unique per run.")
    var tag = "run"

    func validate() throws {
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
        guard loopbackPort(url) != nil else { throw ValidationError("--url must be http://127.0.0.1:<port>") }
    }

    func run() throws {
        let key = try readSecretArgument(apiKey)
        let records = try RecordFile(path: dossiersFile)
        guard records.count > offset else { throw ValidationError("no dossiers left after --offset \(offset)") }
        let port = loopbackPort(url)!
        let body = Array(#"{"payerIp":"203.0.113.7"}"#.utf8)
        let pending = Array(#""status":"pending""#.utf8)
        let items = ItemSource(count: records.count - offset)

        let report = try RawHTTPLoad.run(port: port, connections: concurrency, duration: duration, timeout: timeout) { _ in
            guard let item = items.take() else { return nil }
            let bytes = RawHTTPLoad.request(
                method: "POST", path: "/v1/dossiers/\(records.fields(offset + item)[0])/payment-intents", port: port,
                headers: [
                    ("authorization", "Bearer \(key)"), ("idempotency-key", "\(tag)-\(item)"), ("content-type", "application/json"),
                ],
                body: body)
            return RawRequest(bytes: bytes) { response in
                guard response.status == 201 else { return .unexpected("HTTP \(response.status)") }
                guard response.body.contains(subsequence: pending) else { return .unexpected("201 but not pending") }
                return .ok
            }
        }
        print(report.line([("concurrency", "\(concurrency)")]))
        report.printProblems()
    }
}

/// `feerecon-bench sandbox-create`: the peer of `create-intent` — the gateway sandbox's create
/// endpoint (PROTOCOL.md §1) driven directly at the same concurrency, with requests like the
/// service's (signed with the partner secret; every reply's signature is checked). An answer
/// counts when it is a signed `200` with `MaLoi 00`.
struct SandboxCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-create",
        abstract: "Create transactions directly at the gateway sandbox at a fixed concurrency.")

    @Option(help: "The sandbox's base URL, http://127.0.0.1:<port>.")
    var url: String

    @Option(help: "Partner code (MaDoiTac).")
    var partner = "BTH"

    @Option(help: "The partner's whsec_ secret, or @file to read it from.")
    var secret: String

    @Option(help: "Concurrent clients, each on its own connection.")
    var concurrency = 16

    @Option(help: "Measured seconds.")
    var duration = 10.0

    @Option(help: "Seconds an answer may take after the end before it counts as failed.")
    var timeout = 30.0

    @Option(help: "Reference prefix (1–8 alphanumerics), unique per run.")
    var tag = "SB"

    @Option(help: "Requests at most.")
    var limit = 10_000_000

    func validate() throws {
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
        guard (1...8).contains(tag.count), tag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw ValidationError("--tag must be 1–8 alphanumerics")
        }
        guard loopbackPort(url) != nil else { throw ValidationError("--url must be http://127.0.0.1:<port>") }
    }

    func run() throws {
        let key = try WebhookSecret(try readSecretArgument(secret))
        let signer = WebhookSigner(secret: key)
        let verifier = WebhookVerifier(secret: key)
        let port = loopbackPort(url)!
        let requestedAt = Self.vietnamTime(Date())
        let success = Array(#""MaLoi":"00""#.utf8)
        let items = ItemSource(count: limit)

        let report = try RawHTTPLoad.run(port: port, connections: concurrency, duration: duration, timeout: timeout) { _ in
            guard let item = items.take() else { return nil }
            let reference = tag + String(item)
            let serial = String(format: "%04d", item % 9999 + 1)
            let body = Array("""
                {"LoaiBanTin":"KHOITAO","PhienBan":"1.0","MaDoiTac":"\(partner)","MaThamChieu":"\(reference)",\
                "SoTien":150000,"MaTienTe":"VND","NgonNgu":"vi","ThoiGianGD":"\(requestedAt)","Ip":"203.0.113.7",\
                "ThongTinGiaoDich":"Thanh toan le phi ho so 000.00.99.H10-240101-\(serial)",\
                "UrlTraVe":"http://127.0.0.1:1/pay/return","UrlThongBao":"http://127.0.0.1:1/v1/callbacks/portal",\
                "ThongTinBienLai":{"MaHoSo":"000.00.99.H10-240101-\(serial)","MaTTHC":"1.001234","TenTTHC":"Cap ban sao trich luc",\
                "MaDonVi":"000.00.99.H10","TenDonVi":"So Tu phap","HoTenNguoiNop":"Nguyen Van A",\
                "PhiLePhi":[{"LoaiPhiLePhi":"2","MaPhiLePhi":"LP01","TenPhiLePhi":"Le phi","SoTien":100000},\
                {"LoaiPhiLePhi":"1","MaPhiLePhi":"PH01","TenPhiLePhi":"Phi","SoTien":50000}]}}
                """.utf8)
            var headers = signer.headers(for: body).fields.map { ($0.name, $0.value) }
            headers.append(("x-partner-code", partner))
            headers.append(("content-type", "application/json"))
            let bytes = RawHTTPLoad.request(method: "POST", path: "/ppdvcqg/v1/giao-dich/khoi-tao", port: port, headers: headers, body: body)
            return RawRequest(bytes: bytes) { response in
                do throws(WebhookVerificationError) {
                    _ = try verifier.verify(headers: { response[header: $0] }, body: response.body)
                } catch {
                    return .unexpected("reply signature: \(error.code)")
                }
                guard response.status == 200, response.body.contains(subsequence: success) else {
                    return .unexpected("HTTP \(response.status)")
                }
                return .ok
            }
        }
        print(report.line([("concurrency", "\(concurrency)")]))
        report.printProblems()
    }

    /// `yyyyMMddHHmmss` in Vietnam time (UTC+07:00).
    static func vietnamTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 7 * 3600)
        formatter.dateFormat = "yyyyMMddHHmmss"
        return formatter.string(from: date)
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in these bytes.
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        for start in 0...(count - needle.count) where self[start] == needle[0] {
            if self[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
