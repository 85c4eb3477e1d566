import Foundation
@testable import GatewaySandbox
import TestSupport
import Testing

/// Each fault at rate 1 (or a seeded split), against a loopback receiver. One at a time: several
/// assert on delivery order and lateness.
@Suite(.serialized, .timeLimit(.minutes(5))) struct FaultTests {
    static func settings(_ edit: (inout FaultSettings) -> Void) -> SandboxSettings {
        var settings = SandboxSettings()
        settings.callbackAttempts = 5
        settings.callbackIntervalMilliseconds = 300
        edit(&settings.faults)
        return settings
    }

    @Test func duplicateDeliversTheSameCallbackTwiceWithOneId() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.duplicate = 1; $0.duplicateAfterMilliseconds = 300 }) { sandbox, receiver in
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(id, "success")
            let deliveries = try await receiver.wait("two deliveries") { $0.count == 2 }
            #expect(deliveries[0].id == deliveries[1].id)
            #expect(deliveries[0].body == deliveries[1].body)
            #expect(deliveries.allSatisfy { $0.verified })
            let rows = try await sandbox.waitForCallbacks(transaction: id) { $0.allSatisfy { $0["state"] as? String == "delivered" } }
            #expect(rows.count == 2 && rows.filter { $0["isDuplicate"] as? Bool == true }.count == 1)
            #expect(rows.compactMap { ($0["attemptLog"] as? [[String: Any]])?.last?["resultCode"] as? String }.sorted() == ["00", "02"])
        }
    }

    @Test func reorderLetsLaterCallbacksOvertake() async throws {
        let seed: UInt64 = 5
        let choices = SeededChoices(seed: seed)
        let references = (0..<1000).map { "ORD\($0)X" + String(UUID().uuidString.prefix(8)).replacingOccurrences(of: "-", with: "") }
        let held = try #require(references.first { choices.strikes(.reorder, rate: 0.5, "BTH", $0, "KETQUA-00-1") })
        let prompt = try #require(references.first { !choices.strikes(.reorder, rate: 0.5, "BTH", $0, "KETQUA-00-1") })
        var settings = Self.settings { $0.reorder = 0.5; $0.reorderHoldMilliseconds = 1_500 }
        settings.seed = seed
        try await withSandboxAndReceiver(settings: settings) { sandbox, receiver in
            let first = try await sandbox.createPaid(CreateBody(reference: held, notifyURL: receiver.url))
            let second = try await sandbox.createPaid(CreateBody(reference: prompt, notifyURL: receiver.url))
            try await sandbox.choose(first, "success")
            try await sandbox.choose(second, "success")
            let deliveries = try await receiver.wait("both callbacks") { $0.count == 2 }
            #expect(deliveries.map { $0.json["MaGiaoDich"] as? String } == [second, first])
            #expect((try await sandbox.callbacks(transaction: first)).first?["faults"] as? [String] == ["reorder"])
        }
    }

    @Test func delayDeliversLate() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.delay = 1; $0.delayMilliseconds = 1_200 }) { sandbox, receiver in
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            let chosen = Date()
            try await sandbox.choose(id, "success")
            let deliveries = try await receiver.wait("delayed callback") { !$0.isEmpty }
            #expect(deliveries[0].receivedAt.timeIntervalSince(chosen) >= 1.2)
        }
    }

    @Test func dropNeverDeliversButTheQueryKnows() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.drop = 1 }) { sandbox, receiver in
            let request = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(request)
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.callbacks(transaction: id)
            #expect(rows.count == 1)
            #expect(rows[0]["state"] as? String == "dropped" && (rows[0]["attempts"] as? NSNumber) == 0)
            #expect(rows[0]["nextAttemptAtMilliseconds"] == nil)
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == "00")
            #expect(receiver.deliveries.isEmpty)
        }
    }

    @Test func tamperSendsOneBadSignatureThenGenuineRetries() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.tamperSignature = 1 }) { sandbox, receiver in
            let id = try await sandbox.createPaid(CreateBody(notifyURL: receiver.url))
            try await sandbox.choose(id, "success")
            let rows = try await sandbox.waitForCallbacks(transaction: id, "delivered") { $0.first?["state"] as? String == "delivered" }
            let deliveries = receiver.deliveries(of: id)
            #expect(deliveries.map(\.verified) == [false, true])
            #expect(deliveries[0].id == deliveries[1].id)
            let log = rows[0]["attemptLog"] as? [[String: Any]] ?? []
            #expect(log.map { $0["tampered"] as? Bool } == [true, false])
            #expect(log.first?["resultCode"] as? String == "97" && log.first?["outcome"] as? String == "http_401")
        }
    }

    @Test func changeAmountPutsAnotherSoTienInTheCallbackOnly() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.misstatedCallback = 1; $0.amountChange = 1_000 }) { sandbox, receiver in
            let request = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(request)
            try await sandbox.choose(id, "success")
            let deliveries = try await receiver.wait("callback") { !$0.isEmpty }
            #expect(deliveries[0].amount == 151_000)
            #expect(try await sandbox.query(request.reference).int("SoTien") == 150_000)
            #expect((try await sandbox.truth(id))["amount"] as? NSNumber == 150_000)
        }
    }

    @Test func reverseAfterSuccessIsSilentButQueryAndTruthSay04() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.reverseAfterSuccess = 1; $0.reverseAfterMilliseconds = 300 }) { sandbox, receiver in
            let request = CreateBody(notifyURL: receiver.url)
            let id = try await sandbox.createPaid(request)
            try await sandbox.choose(id, "success")
            let deliveries = try await receiver.wait("success callback") { !$0.isEmpty }
            #expect(deliveries[0].code == "00")
            try await poll(until: { try await sandbox.query(request.reference).string("TrangThaiGD") == "04" },
                           deadline: .seconds(20), "reversal")
            let truth = try await sandbox.truth(id)
            #expect(truth["status"] as? String == "reversed" && truth["outcomeCode"] as? String == "00")
            #expect(try await sandbox.callbacks(transaction: id).count == 1)
        }
    }

    @Test func lateSuccessAfterExpirySendsElevenThenZero() async throws {
        try await withSandboxAndReceiver(settings: Self.settings { $0.lateSuccessAfterExpiry = 1; $0.lateSuccessAfterMilliseconds = 300 }) { sandbox, receiver in
            let request = CreateBody(notifyURL: receiver.url, deadline: WireClock.now(offset: 1))
            let id = try await sandbox.createPaid(request)
            let deliveries = try await receiver.wait("expiry then late success") { $0.count == 2 }
            #expect(deliveries.map(\.code) == ["11", "00"])
            #expect(deliveries[0].id != deliveries[1].id)
            #expect(try await sandbox.query(request.reference).string("TrangThaiGD") == "00")
            let truth = try await sandbox.truth(id)
            #expect(truth["outcomeCode"] as? String == "11" && truth["laterStatus"] as? String == "succeeded")
        }
    }
}
