import Foundation
@testable import GatewaySandbox
import TestSupport
import Testing

/// §5: validation, idempotency per `MaYeuCau`, the amount rule, and the `HOANTIEN` callback.
@Suite(.timeLimit(.minutes(5))) struct RefundTests {
    @Test func refundLifecycleWithCompletion() async throws {
        var settings = SandboxSettings()
        settings.refundMode = .complete
        settings.refundDelayMilliseconds = 300
        try await withSandboxAndReceiver(settings: settings) { sandbox, receiver in
            let payment = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(payment)
            try await sandbox.choose(id, "success")
            let refund = RefundBody(reference: payment.reference, transactionID: id, amount: 50_000)
            let accepted = try await sandbox.refund(refund)
            #expect(accepted.status == 200 && accepted.isSigned && accepted.code == "00")
            #expect(accepted.string("TrangThaiGD") == "05")
            #expect(Array(accepted.json.keys).sorted() == ["MaGiaoDichHoan", "MaLoi", "MoTaLoi", "TrangThaiGD"])
            let refundID = try #require(accepted.string("MaGiaoDichHoan"))
            #expect(refundID.hasPrefix("HT") && refundID != id)

            // Same MaYeuCau and content: the same reply; other content: 94.
            #expect(try await sandbox.refund(refund).body == accepted.body)
            var changed = refund
            changed.amount = 40_000
            let conflict = try await sandbox.refund(changed)
            #expect(conflict.status == 409 && conflict.code == "94")

            let deliveries = try await receiver.wait("refund result") { $0.contains { $0.json["LoaiBanTin"] as? String == "HOANTIEN" } }
            let result = try #require(deliveries.first { $0.json["LoaiBanTin"] as? String == "HOANTIEN" })
            #expect(result.verified && result.code == "00")
            #expect(result.json["TrangThaiGD"] as? String == "00")
            #expect(result.json["MaYeuCau"] as? String == refund.requestID && result.json["MaGiaoDichHoan"] as? String == refundID)
            #expect((result.json["SoTienHoan"] as? NSNumber)?.int64Value == 50_000)
            #expect(result.json["MaGiaoDich"] as? String == id && result.amount == 150_000)
            #expect(result.attempt == 1)
            try await poll(until: { try await sandbox.query(payment.reference).int("SoTienDaHoan") == 50_000 }, "refund counted")
            #expect(try await sandbox.query(payment.reference).string("TrangThaiGD") == "00")

            // The rest can be refunded, then nothing more.
            let rest = try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 100_000))
            #expect(rest.code == "00")
            let tooMuch = try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 1))
            #expect(tooMuch.status == 422 && tooMuch.code == "04")
        }
    }

    @Test func refusalsHaveTheirCodes() async throws {
        try await withSandbox { sandbox in
            let payment = CreateBody()
            let id = try await sandbox.createPaid(payment)
            let pending = try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 1_000))
            #expect(pending.status == 422 && pending.code == "95")
            let unknown = try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: "PG999", amount: 1_000))
            #expect(unknown.status == 404 && unknown.code == "91")
            let wrongReference = try await sandbox.refund(RefundBody(reference: "OTHER", transactionID: id, amount: 1_000))
            #expect(wrongReference.code == "91")
            try await sandbox.choose(id, "success")
            var partialAsFull = RefundBody(reference: payment.reference, transactionID: id, amount: 1_000)
            partialAsFull.kind = "02"
            #expect(try await sandbox.refund(partialAsFull).code == "04")
            var full = partialAsFull
            full.requestID += "F"
            full.amount = 150_000
            #expect(try await sandbox.refund(full).code == "00")
            var malformed = RefundBody(reference: payment.reference, transactionID: id, amount: 1_000)
            malformed.kind = "01"
            let bad = try await sandbox.refund(malformed)
            #expect(bad.status == 400 && bad.code == "03")
            let over = try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 1_000_000_000_001))
            #expect(over.code == "03")
            let cancelled = CreateBody()
            let cancelledID = try await sandbox.createPaid(cancelled)
            try await sandbox.choose(cancelledID, "cancel")
            #expect(try await sandbox.refund(RefundBody(reference: cancelled.reference, transactionID: cancelledID, amount: 1)).code == "95")
        }
    }

    @Test func theControlApiCompletesOrRejectsRefunds() async throws {
        var settings = SandboxSettings()
        settings.refundMode = .manual
        try await withSandboxAndReceiver(settings: settings) { sandbox, receiver in
            let payment = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(payment)
            try await sandbox.choose(id, "success")
            let first = try #require(try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 150_000))
                .string("MaGiaoDichHoan"))
            let rejected = try await sandbox.control(.post, "/refunds/\(first)/reject")
            #expect(rejected.status == 200 && (rejected.json["refund"] as? [String: Any])?["wireStatus"] as? String == "09")
            #expect(try await sandbox.control(.post, "/refunds/\(first)/complete").status == 409)
            let result = try await receiver.wait("rejection callback") { $0.contains { $0.json["LoaiBanTin"] as? String == "HOANTIEN" } }
                .first { $0.json["LoaiBanTin"] as? String == "HOANTIEN" }
            #expect(result?.code == "99" && result?.json["TrangThaiGD"] as? String == "09")
            #expect(try await sandbox.query(payment.reference).int("SoTienDaHoan") == 0)
            // A rejected refund frees its amount.
            let second = try #require(try await sandbox.refund(RefundBody(reference: payment.reference, transactionID: id, amount: 150_000))
                .string("MaGiaoDichHoan"))
            #expect(try await sandbox.control(.post, "/refunds/\(second)/complete").status == 200)
            #expect(try await sandbox.query(payment.reference).int("SoTienDaHoan") == 150_000)
            #expect(try await sandbox.control(.post, "/refunds/HT404/complete").status == 404)
            // Switching to automatic rejection through the control API.
            #expect(try await sandbox.control(.put, "/settings", json: #"{"refundMode":"reject","refundDelayMilliseconds":100}"#).status == 200)
            let other = CreateBody(notifyURL: receiver.url)
            let otherID = try await sandbox.createPaid(other)
            try await sandbox.choose(otherID, "success")
            _ = try await sandbox.refund(RefundBody(reference: other.reference, transactionID: otherID, amount: 10))
            try await poll(until: {
                let truth = try await sandbox.truth(otherID)
                return (truth["refunds"] as? [[String: Any]])?.first?["status"] as? String == "rejected"
            }, "automatic rejection")
        }
    }
}

/// §6: the settlement file of a day with payments, failures, a same-day and a next-day reversal,
/// and refunds, byte for byte; the availability window; the file faults.
@Suite(.timeLimit(.minutes(5))) struct SettlementTests {
    static let day = "20260115"
    static let nextDay = "20260116"

    struct Fixture {
        var ids: [String: String] = [:]
        var references: [String: String] = [:]
        var refunds: [String: String] = [:]
    }

    static func row(
        _ reference: String, _ id: String, bank: String, type: String = "THANHTOAN", time: String, amount: Int64 = 150_000,
        fee: String = "50000", charge: String = "100000", status: String
    ) -> String {
        "\(day),BTH,\(reference),000.00.15.H10-230530-0001,1.001234,\(id),\(bank),\(type),\(time),\(nextDay)000000,\(amount),\(fee),\(charge),VND,\(status),0123456789,VCB"
    }

    @Test func aFullDayByteForByte() async throws {
        var settings = SandboxSettings()
        settings.refundMode = .manual
        settings.callbackAttempts = 1
        try await withSandbox(settings: settings) { sandbox in
            let fixture = try await Self.buildDayWithP4Refund(sandbox)
            let ids = fixture.ids, refs = fixture.references
            let bank = { (name: String) in SeededChoices(seed: 1).bank(partner: "BTH", reference: refs[name]!) }
            let expected = [
                SettlementFile.header,
                Self.row(refs["P1"]!, ids["P1"]!, bank: bank("P1"), time: Self.day + "100000", status: "00"),
                Self.row(refs["P2"]!, ids["P2"]!, bank: "", time: Self.day + "110000", status: "02"),
                Self.row(refs["P4"]!, ids["P4"]!, bank: bank("P4"), time: Self.day + "120000", status: "00"),
                Self.row(refs["P5"]!, ids["P5"]!, bank: "", time: Self.day + "130000", status: "02"),
                Self.row(refs["P6"]!, ids["P6"]!, bank: bank("P6"), time: Self.day + "140000", status: "04"),
                Self.row(refs["P3"]!, ids["P3"]!, bank: bank("P3"), time: Self.day + "150000", status: "04"),
                Self.row(refs["P1"]!, fixture.refunds["R1"]!, bank: bank("P1"), type: "HOANTIEN", time: Self.day + "160000",
                         amount: 50_000, fee: "", charge: "", status: "00"),
                Self.row(refs["P4"]!, fixture.refunds["R2"]!, bank: bank("P4"), type: "HOANTIEN", time: Self.day + "170000",
                         amount: 30_000, fee: "", charge: "", status: "09"),
                "TONG,8,300000,50000",
            ].joined(separator: "\n") + "\n"
            let file = try await sandbox.settlement(Self.day)
            #expect(file.status == 200 && file.isSigned)
            #expect(file.headers["content-type"] == "text/csv; charset=utf-8")
            #expect(file.text == expected)
            #expect(file.body.first != 0xEF && !file.body.contains(0x0D) && file.body.last == 0x0A)
            // Fetched again (new webhook-id): the same bytes.
            #expect(try await sandbox.settlement(Self.day).body == file.body)

            let next = try await sandbox.settlement(Self.nextDay)
            #expect(next.text == SettlementFile.header + "\n"
                + Self.row(refs["P4"]!, ids["P4"]!, bank: bank("P4"), time: Self.nextDay + "080000", status: "04")
                    .replacingOccurrences(of: "\(Self.day),BTH", with: "\(Self.nextDay),BTH")
                    .replacingOccurrences(of: ",\(Self.nextDay)000000,", with: ",20260117000000,")
                + "\nTONG,1,0,0\n")

            // The other partner sees none of it.
            let other = try await sandbox.send(.get, "/ppdvcqg/v1/doi-soat/" + Self.day, secret: TestKeys.otherPartner, partner: "HNI")
            #expect(other.text == SettlementFile.header + "\nTONG,0,0,0\n")

            // File faults: amounts change but the file stays consistent; a broken trailer does not.
            #expect(try await sandbox.control(.put, "/faults", json: #"{"misstatedSettlementRow":1,"amountChange":1000}"#).status == 200)
            let changed = try await sandbox.settlement(Self.day).text
            let rows = changed.split(separator: "\n").dropFirst().dropLast().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            #expect(rows.map { Int64($0[10])! } == [151_000, 151_000, 151_000, 151_000, 151_000, 151_000, 51_000, 31_000])
            for row in rows where row[7] == "THANHTOAN" { #expect(Int64(row[11])! + Int64(row[12])! == Int64(row[10])!) }
            #expect(changed.hasSuffix("TONG,8,302000,51000\n"))
            #expect(try await sandbox.control(.put, "/faults", json: #"{"settlementBrokenTrailer":1}"#).status == 200)
            let broken = try await sandbox.settlement(Self.day).text
            #expect(broken.hasSuffix("TONG,8,301000,50000\n"))
        }
    }

    /// Builds the day through the protocol and the control API, with outcome times on that day:
    /// P1 paid, P2 cancelled, P3 paid and reversed the same day, P4 paid (its refund rejected,
    /// itself reversed the next day), P5 expired, P6 debited-but-reversed; R1 completed, R3 pending.
    static func buildDayWithP4Refund(_ sandbox: SandboxHarness) async throws -> Fixture {
        var fixture = Fixture()
        for name in ["P1", "P2", "P3", "P4", "P5", "P6"] {
            let body = CreateBody(deadline: WireClock.now(offset: 3_600))
            fixture.references[name] = body.reference
            fixture.ids[name] = try await sandbox.createPaid(body)
        }
        let ids = fixture.ids, refs = fixture.references
        try await sandbox.choose(ids["P1"]!, "success", at: day + "100000")
        try await sandbox.choose(ids["P2"]!, "cancel", at: day + "110000")
        try await sandbox.choose(ids["P3"]!, "success", at: day + "090000")
        #expect(try await sandbox.control(.post, "/transactions/\(ids["P3"]!)/reverse", json: #"{"at":"\#(day)150000"}"#).status == 200)
        try await sandbox.choose(ids["P4"]!, "success", at: day + "120000")
        #expect(try await sandbox.control(.post, "/transactions/\(ids["P5"]!)/expire", json: #"{"at":"\#(day)130000"}"#).status == 200)
        try await sandbox.choose(ids["P6"]!, "reversed", at: day + "140000")
        fixture.refunds["R1"] = try await sandbox.refund(RefundBody(reference: refs["P1"]!, transactionID: ids["P1"]!, amount: 50_000))
            .string("MaGiaoDichHoan")
        fixture.refunds["R3"] = try await sandbox.refund(RefundBody(reference: refs["P1"]!, transactionID: ids["P1"]!, amount: 10_000))
            .string("MaGiaoDichHoan")
        fixture.refunds["R2"] = try await sandbox.refund(RefundBody(reference: refs["P4"]!, transactionID: ids["P4"]!, amount: 30_000))
            .string("MaGiaoDichHoan")
        #expect(try await sandbox.control(.post, "/refunds/\(fixture.refunds["R1"]!)/complete", json: #"{"at":"\#(day)160000"}"#).status == 200)
        #expect(try await sandbox.control(.post, "/refunds/\(fixture.refunds["R2"]!)/reject", json: #"{"at":"\#(day)170000"}"#).status == 200)
        #expect(try await sandbox.control(.post, "/transactions/\(ids["P4"]!)/reverse", json: #"{"at":"\#(nextDay)080000"}"#).status == 200)
        return fixture
    }

    @Test func theWindowHoldsAFileUntilSixTheNextMorning() async throws {
        try await withSandbox { sandbox in
            let today = try await sandbox.settlement(WireClock.today)
            #expect(today.status == 404 && today.code == "91" && today.isSigned)
            let tomorrow = String(WireClock.now(offset: 86_400).prefix(8))
            #expect(try await sandbox.settlement(tomorrow).code == "91")
            let old = try await sandbox.settlement("20250101")
            #expect(old.status == 200 && old.text == SettlementFile.header + "\nTONG,0,0,0\n")
            for bad in ["2026011", "20261301", "2026-01-01", "20260230"] {
                let reply = try await sandbox.settlement(bad)
                #expect(reply.status == 400 && reply.code == "03", "\(bad)")
            }
            #expect(try await sandbox.control(.put, "/settlement-window", json: #"{"enabled":false}"#).status == 200)
            let payment = CreateBody()
            let id = try await sandbox.createPaid(payment)
            try await sandbox.choose(id, "success")
            let open = try await sandbox.settlement(WireClock.today)
            #expect(open.status == 200 && open.text.contains(id) && open.text.hasSuffix("TONG,1,150000,0\n"))
        }
    }
}
