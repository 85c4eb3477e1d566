import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import Postgres
import TestSupport
import Testing

/// A citizen pays a dossier end to end: dossier API → payment intent (idempotent) → the
/// sandbox's hosted page → its signed callback → intent succeeded, dossier paid, receipt shown —
/// every step over real HTTP, libcurl and PostgreSQL.
@Suite struct EndToEndTests {
    let code = "000.00.15.H10-230530-0001"

    func payLink(_ service: RunningService, key: String) async throws -> String {
        let dossier = try service.json(try await service.request(.get, "/v1/dossiers/\(code)", apiKey: key))
        let link = try #require(dossier["payLink"] as? String)
        return String(link.dropFirst(service.baseURL.count))
    }

    /// A client that sends the same request at once on several connections (a retry racing its
    /// original): one intent, and every answer is either the original one or "still in progress".
    @Test func sameKeyAtOnceCreatesOneIntent() async throws {
        try await withSandboxAndService { _, service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let answers = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let response = try await service.request(
                            .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "race-1")], apiKey: key)
                        return (response.status, response.body)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = answers.filter { $0.0 == 201 }
            #expect(!created.isEmpty)
            #expect(Set(created.map(\.1)).count == 1, "every 201 is the same answer")
            for (status, body) in answers where status != 201 {
                #expect(status == 409, "\(String(decoding: body, as: UTF8.self))")
                #expect(String(decoding: body, as: UTF8.self).contains("idempotency-request-in-progress"))
            }
            let counts = try await service.tableCounts()
            #expect(counts["payment_intents"] == 1)
            #expect(counts["idempotency_keys"] == 1)
            // Once answered, the key replays the same answer.
            let later = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "race-1")], apiKey: key)
            #expect(later.status == 201)
            #expect(later.body == created.first?.1)
        }
    }

    @Test func citizenPaysThroughTheSandbox() async throws {
        try await withSandboxAndService { sandbox, service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)

            let intentBody = Array(#"{"payerIp":"203.0.113.7"}"#.utf8)
            let first = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "order-1")], body: intentBody, apiKey: key)
            #expect(first.status == 201)
            let intent = try service.json(first)
            #expect(intent["status"] as? String == "pending")
            let checkout = try #require(intent["checkoutUrl"] as? String)
            #expect(checkout.hasPrefix(sandbox.baseURL))

            // The same key and body: the original response, byte for byte.
            let again = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "order-1")], body: intentBody, apiKey: key)
            #expect(again.status == 201)
            #expect(again.body == first.body)
            // The answer stored with the key describes the intent as it was recorded.
            let id0 = try #require(intent["id"] as? String)
            let read = try await service.request(.get, "/v1/payment-intents/\(id0)", apiKey: key)
            #expect(read.status == 200)
            #expect(read.body == first.body)
            // The same key with another body: refused, nothing changes.
            let before = try await service.tableCounts()
            let conflict = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "order-1")],
                body: Array(#"{"payerIp":"203.0.113.8"}"#.utf8), apiKey: key)
            #expect(conflict.status == 409)
            #expect((try service.json(conflict)["type"] as? String)?.hasSuffix("idempotency-key-reused") == true)
            #expect(try await service.tableCounts() == before)
            // Another key for the same dossier returns its open intent, not a second one.
            let other = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "order-2")], apiKey: key)
            #expect(other.status == 200)
            #expect(try service.json(other)["id"] as? String == intent["id"] as? String)

            // The citizen opens the gateway's page and chooses to pay.
            let page = try await sandbox.http.execute(HTTPClientRequest(method: .get, url: checkout))
            #expect(page.status == 200)
            #expect(String(decoding: page.body, as: UTF8.self).contains("150.000"))
            let chosen = try await sandbox.http.execute(HTTPClientRequest(
                method: .post, url: checkout, headers: ["content-type": "application/x-www-form-urlencoded"],
                body: Array("KetQua=00".utf8)))
            #expect(chosen.status == 303)
            let returnURL = try #require(chosen.headers["location"])
            #expect(returnURL.hasPrefix(service.baseURL + "/pay/"))

            // The signed callback arrives and is applied.
            let id = try #require(intent["id"] as? String)
            try await poll(until: {
                let now = try service.json(try await service.request(.get, "/v1/payment-intents/\(id)", apiKey: key))
                return now["status"] as? String == "succeeded"
            }, deadline: .seconds(30), "intent succeeded")
            let dossier = try service.json(try await service.request(.get, "/v1/dossiers/\(code)", apiKey: key))
            #expect(dossier["status"] as? String == "paid")
            #expect(dossier["amountPaid"] as? Int == 150_000)

            // The return page reads the database, whatever the query string claims.
            let returned = try await service.http.execute(HTTPClientRequest(method: .get, url: returnURL))
            #expect(returned.status == 200)
            #expect(String(decoding: returned.body, as: UTF8.self).contains("Đã thanh toán"))
            let receiptPath = try await payLink(service, key: key) + "/receipt"
            let receipt = try await service.request(.get, receiptPath)
            #expect(receipt.status == 200)
            let html = String(decoding: receipt.body, as: UTF8.self)
            #expect(html.contains("Biên lai"))
            #expect(html.contains("150.000 ₫"))
            #expect(html.contains("Nguyễn Văn Ánh"))
            // Paying again is refused: the dossier is paid.
            let more = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "order-3")], apiKey: key)
            #expect(more.status == 409)
        }
    }

    @Test func citizenPagesWithoutJavaScript() async throws {
        try await withSandboxAndService { sandbox, service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let path = try await payLink(service, key: key)
            let page = try await service.request(.get, path)
            #expect(page.status == 200)
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains("150.000 ₫"))
            #expect(html.contains("Lệ phí"))
            #expect(html.contains("Phí"))
            #expect(html.contains("<form method=\"post\""))
            #expect(!html.contains("<script"))
            #expect(html.contains("width=device-width"))

            // The Pay button: an ordinary form post, redirected to the gateway.
            let pay = try await service.http.execute(HTTPClientRequest(method: .post, url: service.baseURL + path))
            #expect(pay.status == 303)
            #expect(pay.headers["location"]?.hasPrefix(sandbox.baseURL) == true)
            // The return page of an unpaid, pending intent refreshes itself.
            let pending = try await service.request(.get, path + "/return?MaThamChieu=FORGED&MaLoi=00")
            #expect(pending.status == 200)
            let pendingHTML = String(decoding: pending.body, as: UTF8.self)
            #expect(pendingHTML.contains("Đang chờ xác nhận"))
            #expect(!pendingHTML.contains("Đã thanh toán"))
            #expect(pendingHTML.contains("http-equiv=\"refresh\""))

            // An unknown link gets a readable page, not a stack trace.
            let unknown = try await service.request(.get, "/pay/" + String(repeating: "x", count: 43))
            #expect(unknown.status == 404)
            #expect(String(decoding: unknown.body, as: UTF8.self).contains("Không tìm thấy hồ sơ"))
            let short = try await service.request(.get, "/pay/abc")
            #expect(short.status == 404)
            let receipt = try await service.request(.get, path + "/receipt")
            #expect(receipt.status == 404)
            // Escaping: a name with markup is shown as text.
            _ = try await service.request(
                .put, "/v1/dossiers/000.00.15.H10-230530-0002", body: Fixtures.dossierBody(applicant: "<b>Lê</b> & \\\"Văn\\\""), apiKey: key)
            let escapedPath = String((try service.json(try await service.request(.get, "/v1/dossiers/000.00.15.H10-230530-0002", apiKey: key))["payLink"] as! String)
                .dropFirst(service.baseURL.count))
            let escaped = String(decoding: try await service.request(.get, escapedPath).body, as: UTF8.self)
            #expect(escaped.contains("&lt;b&gt;Lê&lt;/b&gt; &amp;"))
        }
    }

    @Test func gatewayDownLeavesTheIntentUnknown() async throws {
        // Nothing listens on the gateway's port: the create call cannot connect.
        let closed = try freeLoopbackPort()
        try await withRunningService(gateway: { http, partners in
            PortalGatewayClientFactory.make(baseURL: "http://127.0.0.1:\(closed)/ppdvcqg/v1", partners: partners, http: http, timeout: .seconds(2))
        }) { service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let response = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "k")], apiKey: key)
            #expect(response.status == 201)
            #expect(try service.json(response)["status"] as? String == "unknown")
            let events = try await service.db.query("SELECT kind FROM intent_events ORDER BY id").map { try $0.decode(String.self) }
            #expect(events == ["created", "gateway_unreachable"])

            let path = try await payLink(service, key: key)
            let page = try await service.http.execute(HTTPClientRequest(method: .post, url: service.baseURL + path))
            #expect(page.status == 503)
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains("Cổng thanh toán chưa phản hồi"))
            #expect(html.contains("Thử lại"))
            #expect(try await service.db.query("SELECT count(*) FROM payment_intents")[0].decode(Int64.self) == 1)
        }
    }

    @Test func slowGatewayLeavesTheIntentUnknown() async throws {
        let silent = try SilentServer()
        defer { silent.close() }
        try await withRunningService(gateway: { http, partners in
            PortalGatewayClientFactory.make(baseURL: "http://127.0.0.1:\(silent.port)/ppdvcqg/v1", partners: partners, http: http, timeout: .seconds(1))
        }) { service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let response = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "k")], apiKey: key)
            #expect(response.status == 201)
            #expect(try service.json(response)["status"] as? String == "unknown")
            let status = try await service.db.query("SELECT status FROM payment_intents")[0].decode(String.self)
            #expect(status == "unknown")
            // The key's answer was stored with the `unknown` it reports, in the same transaction:
            // a retry with the same key and body gets exactly it, and causes no second create.
            let (storedStatus, storedBody) = try await service.db.query(
                "SELECT response_status, response_body FROM idempotency_keys WHERE key = 'k'")[0].decode((Int16?, [UInt8]?).self)
            #expect(storedStatus == 201 && storedBody == response.body)
            let retry = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "k")], apiKey: key)
            #expect(retry.status == 201 && retry.body == response.body)
        }
    }
}
