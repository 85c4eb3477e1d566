import Foundation
@testable import GatewaySandbox
import Signing
import TestSupport
import Testing

/// §3 deliveries against a loopback receiver, on a shortened schedule. One test at a time: the
/// schedule is asserted in wall-clock terms.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CallbackDeliveryTests {
    static func settings(attempts: Int64, intervalMilliseconds: Int64, timeoutMilliseconds: Int64 = 5_000) -> SandboxSettings {
        var settings = SandboxSettings()
        settings.callbackAttempts = attempts
        settings.callbackIntervalMilliseconds = intervalMilliseconds
        settings.callbackTimeoutMilliseconds = timeoutMilliseconds
        return settings
    }

    @Test func retriesUntilASignedSuccessWithAStableIdAndFreshSignatures() async throws {
        try await withSandboxAndReceiver(settings: Self.settings(attempts: 5, intervalMilliseconds: 1_100)) { sandbox, receiver in
            receiver.script([.signedStatus(500, "99"), .unsigned, .signedStatus(200, "04"), .signed("00")])
            let request = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(request)
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "delivered after four attempts") {
                $0.first?["state"] as? String == "delivered"
            }
            let deliveries = receiver.deliveries(of: id)
            #expect(deliveries.count == 4)
            #expect(Set(deliveries.map(\.id)).count == 1)
            #expect(deliveries.map(\.attempt) == [1, 2, 3, 4])
            #expect(deliveries.allSatisfy { $0.verified })
            #expect(deliveries.allSatisfy { $0.partner == "BTH" })
            #expect(Set(deliveries.map(\.bodyWithoutAttempt)).count == 1)
            let timestamps = deliveries.compactMap { $0.timestamp.flatMap(Int64.init) }
            #expect(timestamps == timestamps.sorted() && Set(timestamps).count == 4, "each attempt is signed afresh")
            #expect(Set(deliveries.map(\.signature)).count == 4)
            let log = rows.first?["attemptLog"] as? [[String: Any]] ?? []
            let starts = log.compactMap { ($0["startedAtMilliseconds"] as? NSNumber)?.int64Value }
            #expect(starts.count == 4)
            for (previous, next) in zip(starts, starts.dropFirst()) {
                #expect(next - previous >= 1_100, "attempts start one interval apart")
            }
            #expect(log.map { $0["outcome"] as? String } == ["http_500", "unsigned_reply", "rejected", "delivered"])
            #expect(log.map { $0["resultCode"] as? String } == ["99", nil, "04", "00"])
            #expect(log.allSatisfy { ($0["latencyMilliseconds"] as? NSNumber) != nil })
            #expect(rows.first?["webhookId"] as? String == deliveries.first?.id)
            let body = deliveries[0].json
            #expect(body["LoaiBanTin"] as? String == "KETQUA" && body["MaLoi"] as? String == "00")
            #expect(body["MaThamChieu"] as? String == request.reference && body["MaGiaoDich"] as? String == id)
            #expect((body["SoTien"] as? NSNumber)?.int64Value == 150_000 && body["MaTienTe"] as? String == "VND")
            #expect(body["MaHoSo"] as? String == "000.00.15.H10-230530-0001")
            #expect(Set(body.keys) == ["LoaiBanTin", "MaLoi", "MaDoiTac", "MaThamChieu", "MaGiaoDich", "SoTien", "MaTienTe",
                                       "MaNganHang", "ThoiGianGD", "ThongTinGiaoDich", "MaHoSo", "LanGui"])
        }
    }

    @Test func givesUpAfterTheLastAttempt() async throws {
        try await withSandboxAndReceiver(settings: Self.settings(attempts: 3, intervalMilliseconds: 200)) { sandbox, receiver in
            receiver.script(Array(repeating: .signedStatus(500, "99"), count: 10))
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(id, "cancel")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "given up") { $0.first?["state"] as? String == "failed" }
            #expect(receiver.deliveries(of: id).count == 3)
            #expect((rows.first?["attempts"] as? NSNumber)?.intValue == 3)
            #expect(receiver.deliveries(of: id).first?.code == "24")
        }
    }

    @Test func aSigned02EndsTheDelivery() async throws {
        try await withSandboxAndReceiver(settings: Self.settings(attempts: 5, intervalMilliseconds: 200)) { sandbox, receiver in
            receiver.script([.signed("02")])
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "delivered") { $0.first?["state"] as? String == "delivered" }
            #expect((rows.first?["attempts"] as? NSNumber)?.intValue == 1)
            #expect(receiver.deliveries(of: id).count == 1)
        }
    }

    @Test func anAttemptWithoutAnswerInTimeIsRetried() async throws {
        try await withSandboxAndReceiver(settings: Self.settings(attempts: 3, intervalMilliseconds: 300, timeoutMilliseconds: 400)) { sandbox, receiver in
            receiver.script([.slow(.seconds(2))])
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "delivered") { $0.first?["state"] as? String == "delivered" }
            let log = rows.first?["attemptLog"] as? [[String: Any]] ?? []
            #expect(log.first?["outcome"] as? String == "timeout")
            #expect(log.last?["outcome"] as? String == "delivered")
        }
    }

    @Test func anUnreachableReceiverIsLoggedAndRetried() async throws {
        try await withSandbox(settings: Self.settings(attempts: 2, intervalMilliseconds: 100)) { sandbox in
            let id = try await sandbox.createPaid(CreateBody(notifyURL: "http://127.0.0.1:9/closed"))
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "given up") { $0.first?["state"] as? String == "failed" }
            let log = rows.first?["attemptLog"] as? [[String: Any]] ?? []
            #expect(log.count == 2)
            #expect(log.allSatisfy { ($0["outcome"] as? String)?.hasPrefix("transport_error") == true && $0["httpStatus"] == nil })
        }
    }
}

/// §2 and the control API: outcomes, the redirect, expiry.
@Suite(.timeLimit(.minutes(5))) struct OutcomeTests {
    @Test func thePaymentPageShowsThePaymentAndEscapesIt() async throws {
        try await withSandbox { sandbox in
            let id = try await sandbox.createPaid(CreateBody(payer: "<b>Nguyễn Văn A</b> & \"con\""))
            let page = try await sandbox.http.execute(.init(method: .get, url: sandbox.base + "/ppdvcqg/v1/thanh-toan/" + id))
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(html.contains("150.000 ₫") && html.contains(id))
            #expect(html.contains("&lt;b&gt;Nguyễn Văn A&lt;/b&gt; &amp; &quot;con&quot;"))
            #expect(!html.contains("<b>Nguyễn"))
            #expect(!html.contains("<script"))
            #expect(html.contains(#"name="viewport""#))
            for code in ["00", "24", "51", "11", "07"] { #expect(html.contains(#"value="\#(code)""#)) }
            let missing = try await sandbox.http.execute(.init(method: .get, url: sandbox.base + "/ppdvcqg/v1/thanh-toan/PG000"))
            #expect(missing.status == 404)
        }
    }

    @Test(arguments: [("00", "00", "00"), ("24", "24", "02"), ("51", "51", "02"), ("11", "11", "02"), ("07", "07", "04")])
    func pageButtonsRedirectAndScheduleTheCallback(choice: String, callbackCode: String, status: String) async throws {
        try await withSandboxAndReceiver { sandbox, receiver in
            let request = CreateBody(notifyURL: receiver.url, returnURL: "https://service.example/pay/return?lang=vi")
            let id = try await sandbox.createPaid(request)
            let response = try await sandbox.http.execute(.init(
                method: .post, url: sandbox.base + "/ppdvcqg/v1/thanh-toan/" + id,
                headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Array("KetQua=\(choice)".utf8)))
            #expect(response.status == 303)
            #expect(response.headers["location"] == "https://service.example/pay/return?lang=vi&MaThamChieu=\(request.reference)&MaLoi=\(callbackCode)")
            let delivered = try await receiver.wait { $0.contains { $0.json["MaGiaoDich"] as? String == id } }
            #expect(delivered.first { $0.json["MaGiaoDich"] as? String == id }?.code == callbackCode)
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == status)
            // A second choice changes nothing and redirects with the outcome already reached.
            let again = try await sandbox.http.execute(.init(
                method: .post, url: sandbox.base + "/ppdvcqg/v1/thanh-toan/" + id,
                headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Array("KetQua=\(choice == "00" ? "24" : "00")".utf8)))
            #expect(again.headers["location"]?.hasSuffix("MaLoi=\(callbackCode)") == true)
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == status)
            #expect(try await sandbox.callbacks(transaction: id).count == 1)
        }
    }

    @Test func unpaidPaymentsExpireAtTheirDeadlineWithAnElevenCallback() async throws {
        try await withSandboxAndReceiver { sandbox, receiver in
            let deadline = WireClock.now(offset: 2)
            let request = CreateBody(notifyURL: receiver.url, deadline: deadline)
            let reply = try await sandbox.create(request)
            #expect(reply.string("HanThanhToan") == deadline)
            let id = try #require(reply.string("MaGiaoDich"))
            let deliveries = try await receiver.wait(deadline: .seconds(20), "expiry callback") { !$0.isEmpty }
            let expiry = try #require(deliveries.first)
            #expect(expiry.code == "11" && expiry.json["MaGiaoDich"] as? String == id)
            #expect(expiry.json["ThoiGianGD"] as? String == deadline)
            #expect(expiry.json["MaNganHang"] as? String == "")
            #expect(Date().timeIntervalSince1970 >= Double(WireTime.parse(deadline)!))
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == "02")
            // The page no longer offers a choice; a late choice does not pay.
            let late = try await sandbox.control(.post, "/transactions/\(id)/outcome", json: #"{"outcome":"success"}"#)
            #expect(late.status == 409)
        }
    }

    @Test func theDefaultWindowIsFifteenMinutesFromTheRequestTime() async throws {
        try await withSandbox { sandbox in
            let requestedAt = WireClock.now()
            let reply = try await sandbox.create(CreateBody(requestedAt: requestedAt))
            #expect(reply.string("HanThanhToan") == WireTime.format(unixSeconds: WireTime.parse(requestedAt)! + 900))
        }
    }

    @Test func controlApiMovesPaymentsAlongTheStateGraphOnly() async throws {
        try await withSandboxAndReceiver { sandbox, receiver in
            let a = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(a, "00")
            #expect(try await sandbox.control(.post, "/transactions/\(a)/outcome", json: #"{"outcome":"cancel"}"#).status == 409)
            let reversed = try await sandbox.control(.post, "/transactions/\(a)/reverse")
            #expect(reversed.status == 200)
            let truth = reversed.json["transaction"] as? [String: Any]
            #expect(truth?["status"] as? String == "reversed" && truth?["wireStatus"] as? String == "04")
            #expect(truth?["outcomeCode"] as? String == "00" && truth?["laterStatus"] as? String == "reversed")
            #expect(try await sandbox.control(.post, "/transactions/\(a)/reverse").status == 409)

            let b = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            #expect(try await sandbox.control(.post, "/transactions/\(b)/late-success").status == 409)
            #expect(try await sandbox.control(.post, "/transactions/\(b)/expire").status == 200)
            #expect(try await sandbox.control(.post, "/transactions/\(b)/late-success").status == 200)
            let bTruth = try await sandbox.truth(b)
            #expect(bTruth["status"] as? String == "succeeded" && bTruth["outcomeCode"] as? String == "11")
            let codes = try await receiver.wait("expiry and late success") { $0.filter { $0.json["MaGiaoDich"] as? String == b }.count == 2 }
                .filter { $0.json["MaGiaoDich"] as? String == b }
            #expect(Set(codes.compactMap(\.code)) == ["11", "00"])
            #expect(Set(codes.compactMap(\.id)).count == 2, "two events, two webhook-ids")

            #expect(try await sandbox.control(.post, "/transactions/PG404/outcome", json: #"{"outcome":"success"}"#).status == 404)
            #expect(try await sandbox.control(.post, "/transactions/\(b)/outcome", json: #"{"outcome":"maybe"}"#).status == 400)
            #expect(try await sandbox.control(.post, "/transactions/\(b)/outcome", json: "{").status == 400)
            #expect(try await sandbox.control(.post, "/transactions/\(b)/outcome", json: #"{"outcome":"00","at":"2026"}"#).status == 400)

            let all = try await sandbox.control(.get, "/truth?partner=BTH&limit=1")
            #expect((all.json["transactions"] as? [Any])?.count == 1 && all.json["next"] is String)
        }
    }

    @Test func settingsFaultsSeedAndWindowCanBeReadAndChanged() async throws {
        try await withSandbox { sandbox in
            #expect(try await sandbox.control(.put, "/seed", json: #"{"seed":99}"#).json["seed"] as? NSNumber == 99)
            #expect(try await sandbox.control(.get, "/seed").json["seed"] as? NSNumber == 99)
            let faults = try await sandbox.control(.put, "/faults", json: #"{"drop":0.5,"delayMilliseconds":10}"#)
            #expect(faults.status == 200 && faults.json["drop"] as? NSNumber == 0.5 && faults.json["duplicate"] as? NSNumber == 0)
            #expect(try await sandbox.control(.put, "/faults", json: #"{"drop":1.5}"#).status == 400)
            #expect(try await sandbox.control(.put, "/settlement-window", json: #"{"enabled":false}"#).json["enabled"] as? Bool == false)
            let settings = try await sandbox.control(.get, "/settings")
            #expect(settings.json["settlementWindow"] as? Bool == false && settings.json["seed"] as? NSNumber == 99)
            #expect(try await sandbox.control(.put, "/settings", json: #"{"callbackAttempts":0}"#).status == 400)
            #expect(try await sandbox.control(.put, "/settings", json: #"{"refundMode":"manual","autoOutcome":"00"}"#).status == 200)
            #expect(try await sandbox.control(.get, "/settings").json["refundMode"] as? String == "manual")
        }
    }

    @Test func autoPayModeSettlesEveryNewPayment() async throws {
        var settings = SandboxSettings()
        settings.autoOutcome = .success
        settings.autoOutcomeDelayMilliseconds = 100
        try await withSandboxAndReceiver(settings: settings) { sandbox, receiver in
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<5 { group.addTask { try await sandbox.createPaid(CreateBody(notifyURL: receiver.url)) } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            let deliveries = try await receiver.wait("five auto successes") { Set($0.compactMap { $0.json["MaGiaoDich"] as? String }).count == 5 }
            #expect(Set(deliveries.compactMap { $0.json["MaGiaoDich"] as? String }) == Set(ids))
            #expect(deliveries.allSatisfy { $0.code == "00" })
        }
    }
}
