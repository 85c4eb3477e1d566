import CurlHTTP
import FeeReconCore
import FeeReconStore
import Foundation
import TestSupport
import Testing

@Suite struct DossierAPITests {
    let code = "000.00.15.H10-230530-0001"

    @Test func createReadUpdate() async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            let created = try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key)
            #expect(created.status == 201)
            let dossier = try service.json(created)
            #expect(dossier["code"] as? String == code)
            #expect(dossier["amountDue"] as? Int == 150_000)
            #expect(dossier["status"] as? String == "awaiting_payment")
            #expect((dossier["payLink"] as? String)?.contains("/pay/") == true)
            #expect((dossier["feeLines"] as? [[String: Any]])?.first?["kindName"] as? String == "Lệ phí")
            #expect(dossier["applicantName"] as? String == "Nguyễn Văn Ánh")

            let again = try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key)
            #expect(again.status == 200)
            let updated = try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [70_000]), apiKey: key)
            #expect(updated.status == 200)
            #expect(try service.json(updated)["amountDue"] as? Int == 70_000)

            let read = try await service.request(.get, "/v1/dossiers/\(code)", apiKey: key)
            #expect(read.status == 200)
            #expect(try service.json(read)["amountDue"] as? Int == 70_000)
            let counts = try await service.tableCounts()
            #expect(counts["dossiers"] == 1)
            #expect(counts["dossier_fee_lines"] == 1)
            #expect(counts["audit_log"] == 2)
        }
    }

    @Test func anotherAgencysKeySeesNothing() async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            let otherKey = try await service.setUpAgencies(keyFor: [Fixtures.otherAgency])
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let before = try await service.tableCounts()

            let read = try await service.request(.get, "/v1/dossiers/\(code)", apiKey: otherKey)
            #expect(read.status == 404)
            #expect(read.headers["content-type"] == "application/problem+json")
            #expect(!String(decoding: read.body, as: UTF8.self).contains("Nguyễn"))
            let write = try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1]), apiKey: otherKey)
            #expect(write.status == 403)
            let pay = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "k1")], apiKey: otherKey)
            #expect(pay.status == 404)
            #expect(try await service.tableCounts() == before)
        }
    }

    struct BadRequest: Sendable, CustomTestStringConvertible {
        var name: String
        var path: String
        var body: [UInt8]
        var status: Int
        var type: String
        var headers: [(String, String)] = []
        var key: KeyChoice = .valid

        enum KeyChoice: Sendable { case valid, missing, wrong, malformedHeader }

        var testDescription: String { name }
    }

    static let code = "000.00.15.H10-230530-0001"
    static let badRequests: [BadRequest] = [
        BadRequest(name: "bad dossier code", path: "/v1/dossiers/000.00.15.H10-231301-0001", body: Fixtures.dossierBody(), status: 400, type: "validation-failed"),
        BadRequest(name: "code without agency groups", path: "/v1/dossiers/H10-230530-0001", body: Fixtures.dossierBody(), status: 400, type: "validation-failed"),
        BadRequest(name: "unregistered agency", path: "/v1/dossiers/000.00.99.H10-230530-0001", body: Fixtures.dossierBody(), status: 400, type: "validation-failed"),
        BadRequest(name: "zero amount", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [0]), status: 400, type: "validation-failed"),
        BadRequest(name: "negative amount", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [-5]), status: 400, type: "validation-failed"),
        BadRequest(name: "huge amount", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1_000_000_000_001]), status: 400, type: "validation-failed"),
        BadRequest(name: "total over 10^12", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [600_000_000_000, 600_000_000_000]), status: 400, type: "validation-failed"),
        BadRequest(name: "amount beyond Int64", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1]).replacing(#""amount":1"#, with: #""amount":99999999999999999999"#), status: 400, type: "validation-failed"),
        BadRequest(name: "float amount", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1]).replacing(#""amount":1"#, with: #""amount":1.0"#), status: 400, type: "malformed-json"),
        BadRequest(name: "string amount", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1]).replacing(#""amount":1"#, with: #""amount":"1""#), status: 400, type: "validation-failed"),
        BadRequest(name: "51 fee lines", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: Array(repeating: 1000, count: 51)), status: 400, type: "validation-failed"),
        BadRequest(name: "no fee lines", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: []), status: 400, type: "validation-failed"),
        BadRequest(name: "name of 400 code points", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(applicant: String(repeating: "e\u{0301}", count: 200)), status: 400, type: "validation-failed"),
        BadRequest(name: "procedure code with a slash", path: "/v1/dossiers/\(code)", body: Array(#"{"procedureCode":"1.001234/2","procedureName":"x","applicantName":"y","feeLines":[{"kind":"fee","code":"L","name":"n","amount":1}]}"#.utf8), status: 400, type: "validation-failed"),
        BadRequest(name: "name over 200", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(applicant: String(repeating: "Ấ", count: 201)), status: 400, type: "validation-failed"),
        BadRequest(name: "unknown fee kind", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [1]).replacing(#""kind":"charge""#, with: #""kind":"tax""#), status: 400, type: "validation-failed"),
        BadRequest(name: "missing field", path: "/v1/dossiers/\(code)", body: Array(#"{"procedureCode":"1","procedureName":"x","feeLines":[]}"#.utf8), status: 400, type: "validation-failed"),
        BadRequest(name: "malformed JSON", path: "/v1/dossiers/\(code)", body: Array(#"{"procedureCode":"#.utf8), status: 400, type: "malformed-json"),
        BadRequest(name: "duplicate key", path: "/v1/dossiers/\(code)", body: Array(#"{"procedureCode":"1","procedureCode":"2"}"#.utf8), status: 400, type: "malformed-json"),
        BadRequest(name: "invalid UTF-8", path: "/v1/dossiers/\(code)", body: Array(#"{"procedureCode":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8), status: 400, type: "malformed-json"),
        BadRequest(name: "1 MiB body", path: "/v1/dossiers/\(code)", body: [UInt8](repeating: 0x20, count: 1 << 20), status: 413, type: "body-too-large"),
        BadRequest(name: "wrong media type", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), status: 415, type: "unsupported-media-type", headers: [("content-type", "text/plain")]),
        BadRequest(name: "missing key", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), status: 401, type: "unauthenticated", key: .missing),
        BadRequest(name: "wrong key", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), status: 401, type: "unauthenticated", key: .wrong),
        BadRequest(name: "malformed authorization", path: "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), status: 401, type: "unauthenticated", key: .malformedHeader),
    ]

    @Test(arguments: badRequests)
    func badInputChangesNothing(_ bad: BadRequest) async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            let before = try await service.tableCounts()
            var headers = bad.headers
            let apiKey: String?
            switch bad.key {
            case .valid: apiKey = key
            case .missing: apiKey = nil
            case .wrong: apiKey = String(key.dropLast(4)) + "AAAA"
            case .malformedHeader:
                apiKey = nil
                headers.append(("authorization", "Basic \(key)"))
            }
            let response = try await service.request(.put, bad.path, headers: headers, body: bad.body, apiKey: apiKey)
            #expect(response.status == bad.status, "\(bad.name)")
            #expect(response.headers["content-type"] == "application/problem+json")
            let problem = try service.json(response)
            #expect((problem["type"] as? String)?.hasSuffix("/" + bad.type) == true, "\(bad.name): \(problem)")
            #expect((problem["detail"] as? String)?.isEmpty == false)
            #expect(problem["status"] as? Int == bad.status)
            #expect(try await service.tableCounts() == before)
        }
    }

    @Test func feeLinesFreezeAfterPayment() async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            try await service.db.withTransaction { db in
                try await db.execute("UPDATE dossiers SET fees_frozen_at = now()")
            }
            let before = try await service.tableCounts()
            let response = try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(amounts: [5]), apiKey: key)
            #expect(response.status == 409)
            #expect((try service.json(response)["type"] as? String)?.hasSuffix("fee-lines-frozen") == true)
            #expect(try await service.tableCounts() == before)
            // The identical body is still accepted: PUT is idempotent.
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 200)
        }
    }

    @Test func intentCreationNeedsAnIdempotencyKey() async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            #expect(try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status == 201)
            let before = try await service.tableCounts()
            let response = try await service.request(.post, "/v1/dossiers/\(code)/payment-intents", apiKey: key)
            #expect(response.status == 400)
            #expect((try service.json(response)["type"] as? String)?.hasSuffix("idempotency-key-missing") == true)
            let badIP = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "a")],
                body: Array(#"{"payerIp":"not an ip"}"#.utf8), apiKey: key)
            #expect(badIP.status == 400)
            // An address followed by a NUL and more text is not an address.
            let nul = try await service.request(
                .post, "/v1/dossiers/\(code)/payment-intents", headers: [("Idempotency-Key", "b")],
                body: Array(#"{"payerIp":"203.0.113.7\u0000 not an address"}"#.utf8), apiKey: key)
            #expect(nul.status == 400)
            #expect(try await service.tableCounts() == before)
        }
    }

    /// Several first PUTs of one code at once: one creates it, the others find it (200), none fails.
    @Test func concurrentFirstPutsCreateOnce() async throws {
        try await withRunningService { service in
            let key = try await service.setUpAgencies()
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await service.request(.put, "/v1/dossiers/\(code)", body: Fixtures.dossierBody(), apiKey: key).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.sorted() == [200, 200, 200, 201])
            #expect(try await service.db.query("SELECT count(*) FROM dossiers")[0].decode(Int64.self) == 1)
        }
    }

    @Test func operationsEndpoints() async throws {
        try await withRunningService { service in
            #expect(try await service.request(.get, "/healthz").status == 200)
            #expect(try await service.request(.get, "/readyz").status == 200)
            let metrics = try await service.request(.get, "/metrics")
            #expect(metrics.status == 200)
            let missing = try await service.request(.get, "/v1/nothing-here", apiKey: "frk_x_y")
            #expect(missing.status == 401 || missing.status == 404)
        }
    }
}

extension Array where Element == UInt8 {
    func replacing(_ old: String, with new: String) -> [UInt8] {
        Array(String(decoding: self, as: UTF8.self).replacingOccurrences(of: old, with: new).utf8)
    }
}
