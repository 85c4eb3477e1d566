import CurlHTTP
import Foundation
@testable import GatewaySandbox
import Postgres
import Signing
import TestSupport
import Testing

/// §1 and §4 over loopback HTTP against the real sandbox and PostgreSQL, with an independent client.
@Suite(.timeLimit(.minutes(3))) struct CreateAndQueryTests {
    @Test func createReturnsASignedReplyWithLinkAndDeadline() async throws {
        try await withSandbox { sandbox in
            let request = CreateBody(requestedAt: "20260115101000")
            let reply = try await sandbox.create(request)
            #expect(reply.status == 200)
            #expect(reply.isSigned)
            #expect(reply.headers["x-partner-code"] == "BTH")
            #expect(reply.headers["content-type"] == "application/json")
            #expect(reply.code == "00")
            #expect(reply.string("MoTaLoi") == "Thanh cong")
            #expect(reply.string("MaThamChieu") == request.reference)
            let id = try #require(reply.string("MaGiaoDich"))
            #expect(id.hasPrefix("PG260115") && id.dropFirst(2).allSatisfy(\.isNumber))
            #expect(reply.string("DuongDanThanhToan") == sandbox.base + "/ppdvcqg/v1/thanh-toan/" + id)
            #expect(reply.string("HanThanhToan") == "20260115102500")
            #expect(Array(reply.json.keys).sorted() == ["DuongDanThanhToan", "HanThanhToan", "MaGiaoDich", "MaLoi", "MaThamChieu", "MoTaLoi"])
        }
    }

    @Test func createIsIdempotentOnTheJSONValue() async throws {
        try await withSandbox { sandbox in
            let request = CreateBody(deadline: WireClock.now(offset: 120))
            let first = try await sandbox.create(request)
            // Same value, other key order and whitespace, new webhook-id.
            var reordered = request
            reordered.fields.reverse()
            let text = "{\n  " + reordered.fields.map { "\"\($0.0)\" : \($0.1)" }.joined(separator: ",\n  ") + "\n}"
            let second = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: Array(text.utf8))
            #expect(second.status == 200 && second.body == first.body)
            #expect(second.headers["webhook-id"] != first.headers["webhook-id"])
            // Different content: 409 / 94, and nothing changed.
            let changed = try await sandbox.create(request.setting("ThongTinGiaoDich", raw: #""Khac""#))
            #expect(changed.status == 409 && changed.code == "94" && changed.isSigned)
            let third = try await sandbox.create(request)
            #expect(third.body == first.body)
            let truth = try await sandbox.control(.get, "/truth?reference=\(request.reference)").json["transactions"] as? [Any]
            #expect(truth?.count == 1)
        }
    }

    @Test func malformedAndInconsistentCreatesAreRefusedWithTheirCodes() async throws {
        try await withSandbox { sandbox in
            let base = CreateBody()
            let cases: [(CreateBody, Int, String)] = [
                (base.setting("SoTien", raw: "150000.0"), 400, "03"),
                (base.setting("SoTien", raw: "150001"), 422, "04"),
                (base.setting("MaThamChieu", raw: nil), 400, "03"),
                (CreateBody(dossier: "000-230530-0001"), 400, "03"),
                (CreateBody(dossier: "000.00.15.H10-230230-0001"), 400, "03"),
                (CreateBody(payer: String(repeating: "Ư", count: 201)), 400, "03"),
                (CreateBody(amount: 1_000_000_000_001, lines: [("1", 1_000_000_000_001)]), 400, "03"),
                (CreateBody(amount: 1_000_000_000_000, lines: [("1", 1_000_000_000_000)]), 200, "00"),
                (CreateBody(amount: 51, lines: Array(repeating: ("1", 1), count: 51)), 400, "03"),
                (CreateBody(amount: 50, lines: Array(repeating: ("2", 1), count: 50)), 200, "00"),
            ]
            for (body, status, code) in cases {
                let reply = try await sandbox.create(body)
                #expect(reply.status == status && reply.code == code && reply.isSigned, "\(body.bytes.count) bytes → \(reply.text)")
            }
            let broken = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: Array(#"{"MaDoiTac":"BTH","#.utf8))
            #expect(broken.status == 400 && broken.code == "03" && broken.isSigned)
            // Nothing was created by the refused ones.
            let refused = try await sandbox.query(base.reference)
            #expect(refused.status == 404 && refused.code == "91")
        }
    }

    @Test func queryReportsThePaymentsOwnStatus() async throws {
        try await withSandbox { sandbox in
            let request = CreateBody(requestedAt: "20260115101000", deadline: WireClock.now(offset: 600))
            let id = try await sandbox.createPaid(request)
            let pending = try await sandbox.query(request.reference)
            #expect(pending.status == 200 && pending.isSigned)
            #expect(pending.code == "00" && pending.string("MoTaLoi") == "Thanh cong")
            #expect(pending.string("MaGiaoDich") == id && pending.string("TrangThaiGD") == "01")
            #expect(pending.int("SoTien") == 150_000 && pending.int("SoTienDaHoan") == 0)
            #expect(pending.string("ThoiGianGD") == "20260115101000" && pending.string("MaNganHang") == "")
            #expect(Array(pending.json.keys).sorted() == [
                "MaGiaoDich", "MaLoi", "MaNganHang", "MaThamChieu", "MoTaLoi", "SoTien", "SoTienDaHoan", "ThoiGianGD", "TrangThaiGD",
            ])
            try await sandbox.choose(id, "success", at: "20260115101500")
            let paid = try await sandbox.query(request.reference)
            #expect(paid.string("TrangThaiGD") == "00" && paid.string("ThoiGianGD") == "20260115101500")
            #expect(paid.string("MaNganHang") == SeededChoices(seed: 1).bank(partner: "BTH", reference: request.reference))
            let unknown = try await sandbox.query("NOSUCHREF")
            #expect(unknown.status == 404 && unknown.code == "91" && unknown.isSigned)
            let otherPartner = try await sandbox.send(
                .post, "/ppdvcqg/v1/giao-dich/tra-cuu",
                body: Array(#"{"LoaiBanTin":"TRACUU","MaDoiTac":"HNI","MaThamChieu":"\#(request.reference)","ThoiGianGD":"\#(WireClock.now())"}"#.utf8),
                secret: TestKeys.otherPartner, partner: "HNI")
            #expect(otherPartner.code == "91")
            let badQuery = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/tra-cuu", body: Array(#"{"LoaiBanTin":"TRACUU","MaDoiTac":"BTH"}"#.utf8))
            #expect(badQuery.status == 400 && badQuery.code == "03")
        }
    }

    @Test func aStorageFailureIsASignedOtherError() async throws {
        try await withSandbox { sandbox in
            try await sandbox.database.client.execute("ALTER TABLE sandbox_payments RENAME TO sandbox_payments_gone")
            let reply = try await sandbox.create(CreateBody())
            #expect(reply.status == 500 && reply.code == "99" && reply.isSigned)
            try await sandbox.database.client.execute("ALTER TABLE sandbox_payments_gone RENAME TO sandbox_payments")
        }
    }

    @Test func statsCountRequestsAndHandlerTime() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.create(CreateBody())
            _ = try await sandbox.create(CreateBody())
            let stats = try await sandbox.control(.get, "/stats")
            let create = (stats.json["endpoints"] as? [String: Any])?["create"] as? [String: Any]
            #expect((create?["requests"] as? NSNumber)?.intValue == 2)
            #expect(((create?["totalHandlerNanoseconds"] as? NSNumber)?.int64Value ?? 0) > 0)
        }
    }
}

/// Every request is verified before its body is parsed; every rejection is `97` and changes nothing.
@Suite(.timeLimit(.minutes(3))) struct SignatureTests {
    static func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

    @Test func rejectsEveryBrokenSignature() async throws {
        try await withSandbox { sandbox in
            let path = "/ppdvcqg/v1/giao-dich/khoi-tao"
            let body = CreateBody().bytes
            let now = Int64(Date().timeIntervalSince1970)
            let good = WebhookSigner(secret: TestKeys.current).signature(id: "msg_a", timestamp: now, body: body)
            let mac = String(good.dropFirst(3))
            let cases: [(String, SignedReply)] = [
                ("wrong key", try await sandbox.send(.post, path, body: body, secret: TestKeys.stranger)),
                ("301 s old", try await sandbox.send(.post, path, body: body, timestamp: Self.unixNow() - 301)),
                // 302: the second may turn between signing here and verifying there.
                ("301 s ahead", try await sandbox.send(.post, path, body: body, timestamp: Self.unixNow() + 302)),
                ("no webhook-id", try await sandbox.send(.post, path, body: body, omit: ["webhook-id"])),
                ("no timestamp", try await sandbox.send(.post, path, body: body, omit: ["webhook-timestamp"])),
                ("no signature", try await sandbox.send(.post, path, body: body, omit: ["webhook-signature"])),
                ("fractional timestamp", try await sandbox.raw(.post, path, body: body, headers: [
                    "webhook-id": "msg_a", "webhook-timestamp": "\(now).9", "webhook-signature": good, "x-partner-code": "BTH"])),
                ("entry without comma", try await sandbox.send(.post, path, body: body, id: "msg_a", timestamp: now, signature: "v1" + mac)),
                ("bad base64", try await sandbox.send(.post, path, body: body, id: "msg_a", timestamp: now, signature: "v1,@@@@")),
                ("doubled space", try await sandbox.send(.post, path, body: body, id: "msg_a", timestamp: now, signature: "v2,abcd  " + good)),
                ("only other versions", try await sandbox.send(.post, path, body: body, id: "msg_a", timestamp: now, signature: "v2," + mac)),
                ("id outside its alphabet", try await sandbox.send(.post, path, body: body, id: "msg a!")),
                ("id too long", try await sandbox.send(.post, path, body: body, id: String(repeating: "a", count: 65))),
                ("tampered body", try await sandbox.send(.post, path, body: body, id: "msg_a", timestamp: now,
                                                         signature: WebhookSigner(secret: TestKeys.current).signature(id: "msg_a", timestamp: now, body: body + [0x20]))),
            ]
            for (name, reply) in cases {
                #expect(reply.status == 401 && reply.code == "97", "\(name): \(reply.status) \(reply.text)")
                #expect(reply.isSigned, "\(name): a known partner's rejection is signed")
            }
            let reference = CreateBody().reference
            #expect(try await sandbox.query(reference).code == "91")
            let count = try await sandbox.database.client.query("SELECT count(*) FROM sandbox_payments").first!.decode(Int64.self)
            #expect(count == 0)
        }
    }

    @Test func unknownOrMissingPartnerIsAnUnsigned97() async throws {
        try await withSandbox { sandbox in
            for partner in [nil, "XYZ", ""] as [String?] {
                let reply = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: CreateBody().bytes, partner: partner)
                #expect(reply.status == 401 && reply.code == "97")
                #expect(reply.headers["webhook-signature"] == nil && reply.headers["webhook-id"] == nil)
            }
        }
    }

    @Test func acceptsTheRotationKeyAndTimestampsWithinTolerance() async throws {
        try await withSandbox { sandbox in
            let now = Int64(Date().timeIntervalSince1970)
            let rotated = try await sandbox.create(CreateBody(), id: nil)
            #expect(rotated.code == "00")
            let old = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: CreateBody().bytes, secret: TestKeys.previous)
            #expect(old.status == 200 && old.code == "00")
            // The reply is signed with the current key only.
            let verifier = WebhookVerifier(secret: TestKeys.previous)
            #expect(throws: WebhookVerificationError.self) { try verifier.verify(headers: { old.headers[$0] }, body: old.body) }
            #expect(old.isSigned)
            for offset in [-290, 290] as [Int64] {
                let reply = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: CreateBody().bytes, timestamp: now + offset)
                #expect(reply.code == "00", "offset \(offset)")
            }
            // Several signatures, one valid, unknown versions skipped.
            let body = CreateBody().bytes
            let valid = WebhookSigner(secret: TestKeys.current).signature(id: "msg_multi", timestamp: now, body: body)
            let stranger = WebhookSigner(secret: TestKeys.stranger).signature(id: "msg_multi", timestamp: now, body: body)
            let multi = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: body, id: "msg_multi", timestamp: now,
                                               signature: "v1a,xyz \(stranger) \(valid)")
            #expect(multi.code == "00")
        }
    }

    @Test func bodyPartnerMismatchIs97AndNeverRemembered() async throws {
        try await withSandbox { sandbox in
            let mismatched = CreateBody(partner: "HNI")
            let reply = try await sandbox.create(mismatched, id: "msg_partner")
            #expect(reply.status == 401 && reply.code == "97" && reply.isSigned)
            let corrected = CreateBody(reference: mismatched.reference)
            let retried = try await sandbox.create(corrected, id: "msg_partner")
            #expect(retried.status == 200 && retried.code == "00")
        }
    }

    @Test func bodiesOver64KiBAre413BeforeBeingRead() async throws {
        try await withSandbox { sandbox in
            let big = [UInt8](repeating: 0x20, count: 65_537)
            let reply = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: big)
            #expect(reply.status == 413 && reply.code == "03" && reply.isSigned)
            let exact = Array(repeating: UInt8(0x20), count: 65_536 - CreateBody().bytes.count) + CreateBody().bytes
            let atLimit = try await sandbox.send(.post, "/ppdvcqg/v1/giao-dich/khoi-tao", body: exact)
            #expect(atLimit.status == 200 && atLimit.code == "00")
            // A chunked body has no Content-Length: the streamed cap applies.
            let chunked = try await RawHTTP.post(
                port: sandbox.port, path: "/ppdvcqg/v1/giao-dich/khoi-tao",
                headers: ["x-partner-code: BTH", "webhook-id: msg_chunked", "webhook-timestamp: 1", "webhook-signature: v1,AAAA"],
                chunks: Array(repeating: [UInt8](repeating: 0x20, count: 16_384), count: 5))
            #expect(chunked.hasPrefix("HTTP/1.1 413"))
            #expect(chunked.contains(#""MaLoi":"03""#))
        }
    }
}

/// A verified request whose `webhook-id` got a final answer gets that answer again, byte for byte.
@Suite(.timeLimit(.minutes(3))) struct ReplayTests {
    @Test func finalAnswersAreReplayedAndChangeNothing() async throws {
        try await withSandbox { sandbox in
            let request = CreateBody()
            let first = try await sandbox.create(request, id: "msg_replay_00")
            // Same id, a body that would be a 94: the remembered 00 comes back, freshly signed.
            let replay = try await sandbox.create(request.setting("ThongTinGiaoDich", raw: #""Khac""#), id: "msg_replay_00")
            #expect(replay.status == 200 && replay.body == first.body && replay.isSigned)
            #expect(replay.headers["webhook-id"] != first.headers["webhook-id"])

            let malformed = try await sandbox.create(CreateBody().setting("SoTien", raw: "1.5"), id: "msg_replay_03")
            #expect(malformed.code == "03")
            let fixed = CreateBody()
            let again = try await sandbox.create(fixed, id: "msg_replay_03")
            #expect(again.status == 400 && again.body == malformed.body)
            #expect(try await sandbox.query(fixed.reference).code == "91")

            let mismatch = try await sandbox.create(CreateBody().setting("SoTien", raw: "999"), id: "msg_replay_04")
            #expect(mismatch.code == "04")
            #expect(try await sandbox.create(CreateBody(), id: "msg_replay_04").body == mismatch.body)

            let conflict = try await sandbox.create(request.setting("ThongTinGiaoDich", raw: #""Khac""#), id: "msg_replay_94")
            #expect(conflict.code == "94")
            #expect(try await sandbox.create(request, id: "msg_replay_94").body == conflict.body)
        }
    }

    @Test func notFoundIsProcessedAfresh() async throws {
        try await withSandbox { sandbox in
            let request = CreateBody()
            let before = try await sandbox.query(request.reference, id: "msg_query_91")
            #expect(before.code == "91")
            _ = try await sandbox.createPaid(request)
            let after = try await sandbox.query(request.reference, id: "msg_query_91")
            #expect(after.code == "00" && after.string("TrangThaiGD") == "01")
            // 00 is final: the same id keeps answering the state it saw.
            let id = try #require(after.string("MaGiaoDich"))
            try await sandbox.choose(id, "success")
            #expect(try await sandbox.query(request.reference, id: "msg_query_91").body == after.body)
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == "00")
        }
    }
}

/// Same seed, same ids and fault decisions, whatever the arrival order.
@Suite(.timeLimit(.minutes(3))) struct DeterminismTests {
    @Test func sameSeedSameTransactionIdsAndFaults() async throws {
        var settings = SandboxSettings()
        settings.seed = 20_260_115
        settings.faults.drop = 0.5
        settings.callbackIntervalMilliseconds = 60_000
        let references = (0..<6).map { "DET\($0)X" + String(settings.seed) }
        func run(order: [String]) async throws -> ([String: String], [String: [String]]) {
            var ids: [String: String] = [:]
            var faults: [String: [String]] = [:]
            try await withSandbox(settings: settings) { sandbox in
                for reference in order {
                    ids[reference] = try await sandbox.createPaid(CreateBody(reference: reference, requestedAt: "20260115101000", deadline: WireClock.now(offset: 600)))
                }
                for reference in order { try await sandbox.choose(ids[reference]!, "success") }
                for reference in order {
                    let rows = try await sandbox.callbacks(transaction: ids[reference]!)
                    faults[reference] = rows.flatMap { $0["faults"] as? [String] ?? [] }
                    #expect(rows.count == 1)
                }
            }
            return (ids, faults)
        }
        let (ids1, faults1) = try await run(order: references)
        let (ids2, faults2) = try await run(order: references.reversed())
        #expect(ids1 == ids2)
        #expect(faults1 == faults2)
        #expect(faults1.values.contains(["drop"]) && faults1.values.contains([]))
        settings.seed += 1
        var other: [String] = []
        try await withSandbox(settings: settings) { sandbox in
            other.append(try await sandbox.createPaid(CreateBody(reference: references[0], requestedAt: "20260115101000")))
        }
        #expect(other[0] != ids1[references[0]])
    }
}
