import CurlHTTP
import FeeReconCore
import FeeReconServer
import FeeReconStore
import Foundation
import Postgres
import Signing
import TestSupport
import Testing

@Suite struct OutboxTests {
    func fastWorkers(_ settings: inout AppSettings) {
        settings.workerInterval = .milliseconds(50)
        settings.deliverySchedule = DeliverySchedule(delays: [.milliseconds(100), .milliseconds(100)])
    }

    @Test func paidDossierIsNotifiedSignedAndRecorded() async throws {
        let receiver = Receiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        try await withRunningService(settings: fastWorkers) { service in
            let paying = try await CallbackTests().pendingIntent(service)
            try await service.db.withConnection { db in
                try await DossierStore.setNotifyURL(agencyID: try await DossierStore.agencyID(dossierID: paying.dossierID, on: db)!, url: receiver.url, on: db)
            }
            let response = try await service.postCallback(CallbackTests().callback(paying), id: "evt_paid")
            #expect(response.status == 200)

            try await poll(until: { !receiver.received.value.isEmpty }, deadline: .seconds(20), "notification delivered")
            let message = receiver.received.value[0]
            let verified = try WebhookVerifier(secret: service.notifySecret).verify(headers: { message.headers[$0] }, body: message.body)
            #expect(verified.id.hasPrefix("ntf_"))
            let payload = try JSONSerialization.jsonObject(with: Data(message.body)) as! [String: Any]
            #expect(payload["type"] as? String == "dossier.paid")
            #expect(payload["dossierCode"] as? String == paying.code.rawValue)
            #expect(payload["amountPaid"] as? Int == 150_000)
            #expect((payload["payment"] as? [String: Any])?["reference"] as? String == paying.intent.reference.rawValue)

            try await poll(until: {
                try await service.db.query("SELECT count(*) FROM outbox_notifications WHERE status = 'delivered'")[0].decode(Int64.self) == 1
            }, deadline: .seconds(10), "delivery recorded")
            let attempts = try await service.db.query("SELECT count(*) FROM outbox_attempts WHERE http_status = 200")[0].decode(Int64.self)
            #expect(attempts == 1)
            // A duplicate callback does not notify twice.
            _ = try await service.postCallback(CallbackTests().callback(paying), id: "evt_paid_again")
            #expect(try await service.db.query("SELECT count(*) FROM outbox_notifications")[0].decode(Int64.self) == 1)
        }
    }

    @Test func failingReceiverIsRetriedThenFailedThenReplayed() async throws {
        let receiver = Receiver()
        receiver.status.withLock { $0 = 500 }
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        try await withRunningService(settings: fastWorkers) { service in
            let key = try await service.setUpAgencies()
            let paying = try await CallbackTests().pendingIntent(service)
            try await service.db.withConnection { db in
                try await DossierStore.setNotifyURL(agencyID: try await DossierStore.agencyID(dossierID: paying.dossierID, on: db)!, url: receiver.url, on: db)
            }
            _ = try await service.postCallback(CallbackTests().callback(paying), id: "evt_paid")

            // One attempt and two retries, then the notification is failed.
            try await poll(until: {
                try await service.db.query("SELECT count(*) FROM outbox_notifications WHERE status = 'failed'")[0].decode(Int64.self) == 1
            }, deadline: .seconds(20), "notification failed")
            #expect(receiver.received.value.count == 3)
            #expect(Set(receiver.received.value.map { $0.headers["webhook-id"] ?? "" }).count == 1)

            let failed = try await service.request(.get, "/v1/notifications?status=failed", apiKey: key)
            #expect(failed.status == 200)
            let list = try service.json(failed)["notifications"] as! [[String: Any]]
            #expect(list.count == 1)
            let id = list[0]["id"] as! Int
            #expect(list[0]["attempts"] as? Int == 3)
            #expect(list[0]["lastHttpStatus"] as? Int == 500)

            let detail = try service.json(try await service.request(.get, "/v1/notifications/\(id)", apiKey: key))
            #expect((detail["attemptLog"] as? [[String: Any]])?.count == 3)

            // A replay gets the whole schedule again: one attempt and two retries, then failed.
            #expect(try await service.request(.post, "/v1/notifications/\(id)/replay", apiKey: key).status == 202)
            try await poll(until: {
                try await service.db.query("SELECT attempts FROM outbox_notifications WHERE status = 'failed'").first?.decode(Int16.self) == 6
            }, deadline: .seconds(20), "replayed notification failed again after its schedule")
            #expect(receiver.received.value.count == 6)

            receiver.status.withLock { $0 = 204 }
            let replay = try await service.request(.post, "/v1/notifications/\(id)/replay", apiKey: key)
            #expect(replay.status == 202)
            try await poll(until: {
                try await service.db.query("SELECT count(*) FROM outbox_notifications WHERE status = 'delivered'")[0].decode(Int64.self) == 1
            }, deadline: .seconds(20), "replayed notification delivered")
            #expect(receiver.received.value.count == 7)
            let numbers = try await service.db.query("SELECT attempt FROM outbox_attempts ORDER BY attempt").map { Int(try $0.decode(Int16.self)) }
            #expect(numbers == Array(1...7))
            #expect(try await service.request(.post, "/v1/notifications/\(id)/replay", apiKey: key).status == 409)
            let otherKey = try await service.setUpAgencies(keyFor: [Fixtures.otherAgency])
            #expect(try await service.request(.get, "/v1/notifications/\(id)", apiKey: otherKey).status == 404)
            #expect(try await service.request(.get, "/v1/notifications?status=bogus", apiKey: key).status == 400)
        }
    }
}
