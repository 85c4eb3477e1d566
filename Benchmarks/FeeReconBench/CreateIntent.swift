import ArgumentParser
import CurlHTTP
import Foundation
import Signing

/// `feerecon-bench create-intent`: N concurrent API clients each create a payment intent for
/// their next dossier (`POST /v1/dossiers/{code}/payment-intents` with a fresh Idempotency-Key),
/// one request after another, for a fixed time. An answer counts when it is `201` with the
/// intent `pending` (the gateway accepted it). Prints one `RESULT` line.
struct CreateIntent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-intent",
        abstract: "Create payment intents through the service's API at a fixed concurrency.")

    @Option(help: "The service's base URL, e.g. http://127.0.0.1:8080.")
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

    @Option(help: "Seconds one request may take before it counts as failed.")
    var timeout = 30.0

    @Option(help: "Idempotency-Key prefix, unique per run.")
    var tag = "run"

    func validate() throws {
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1…1000") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0…3600 seconds") }
    }

    func run() async throws {
        let key = try readSecretArgument(apiKey)
        let records = try RecordFile(path: dossiersFile)
        let offset = self.offset
        guard records.count > offset else { throw ValidationError("no dossiers left after --offset \(offset)") }
        let client = try makeLoadClient(connections: concurrency, timeout: timeout)
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let body = Array(#"{"payerIp":"203.0.113.7"}"#.utf8)
        let pending = Array(#""status":"pending""#.utf8)
        let tag = self.tag

        let report = await runClosedLoop(
            concurrency: concurrency, duration: duration, items: ItemSource(count: records.count - offset),
            makeState: { _ in () },
            step: { _, items in
                guard let item = items.take() else { return nil }
                let request = HTTPClientRequest(
                    method: .post, url: "\(base)/v1/dossiers/\(records.fields(offset + item)[0])/payment-intents",
                    headers: [
                        "authorization": "Bearer \(key)", "idempotency-key": "\(tag)-\(item)",
                        "content-type": "application/json",
                    ],
                    body: body)
                do {
                    let response = try await client.execute(request)
                    guard response.status == 201 else { return .unexpected("HTTP \(response.status)") }
                    guard response.body.contains(subsequence: pending) else { return .unexpected("201 but not pending") }
                    return .ok
                } catch {
                    return .failed(describe(error))
                }
            })
        await client.shutdown()
        print(report.line([("concurrency", "\(concurrency)")]))
        report.printProblems()
    }
}

/// `feerecon-bench sandbox-create`: the peer of `create-intent` — the gateway sandbox's create
/// endpoint (PROTOCOL.md §1) driven directly at the same concurrency, with requests like the
/// service's (signed with the partner secret; every reply's signature is checked). An answer
/// counts when it is a signed `200` with `MaLoi 00`.
struct SandboxCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-create",
        abstract: "Create transactions directly at the gateway sandbox at a fixed concurrency.")

    @Option(help: "The sandbox's API base, e.g. http://127.0.0.1:8090/ppdvcqg/v1.")
    var url: String

    @Option(help: "Partner code (MaDoiTac).")
    var partner = "BTH"

    @Option(help: "The partner's whsec_ secret, or @file to read it from.")
    var secret: String

    @Option(help: "Concurrent clients, each on its own connection.")
    var concurrency = 16

    @Option(help: "Measured seconds.")
    var duration = 10.0

    @Option(help: "Seconds one request may take before it counts as failed.")
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
    }

    func run() async throws {
        let key = try WebhookSecret(try readSecretArgument(secret))
        let signer = WebhookSigner(secret: key)
        let verifier = WebhookVerifier(secret: key)
        let client = try makeLoadClient(connections: concurrency, timeout: timeout)
        let endpoint = (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/giao-dich/khoi-tao"
        let requestedAt = Self.vietnamTime(Date())
        let success = Array(#""MaLoi":"00""#.utf8)
        let (partner, tag) = (self.partner, self.tag)

        let report = await runClosedLoop(
            concurrency: concurrency, duration: duration, items: ItemSource(count: limit),
            makeState: { _ in () },
            step: { _, items in
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
                var headers = HTTPHeaders()
                for field in signer.headers(for: body).fields { headers.add(name: field.name, value: field.value) }
                headers.add(name: "x-partner-code", value: partner)
                headers.add(name: "content-type", value: "application/json")
                do {
                    let response = try await client.execute(HTTPClientRequest(method: .post, url: endpoint, headers: headers, body: body))
                    if let problem = replySignatureProblem(response, verifier) { return .unexpected("reply signature: \(problem)") }
                    guard response.status == 200, response.body.contains(subsequence: success) else {
                        return .unexpected("HTTP \(response.status)")
                    }
                    return .ok
                } catch {
                    return .failed(describe(error))
                }
            })
        await client.shutdown()
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
