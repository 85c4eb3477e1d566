import CurlHTTP
import FeeReconCore
import FeeReconStore
import Foundation
import Postgres
import Signing
import TestSupport
import Testing

/// The callback endpoint against the real application and PostgreSQL, with the test playing the
/// gateway: it signs callbacks with the partner secret and verifies the signed replies.
@Suite struct CallbackTests {
    struct Paying {
        var dossierID: Int64
        var intent: IntentRecord
        var code: DossierCode
    }

    /// A dossier with one intent accepted by the gateway (pending), as after a create call.
    func pendingIntent(_ service: RunningService, serial: Int = 1, amount: Int64 = 150_000) async throws -> Paying {
        try await service.db.withTransaction { db in
            let agency = try await DossierStore.upsertAgency(code: Fixtures.agency, name: "Sở Tư pháp", partner: service.partner, on: db)
            let code = DossierCode(rawValue: "000.00.15.H10-230530-\(String(format: "%04d", serial))")!
            let id = try await DossierStore.insertDossier(
                code: code, agencyID: agency.id,
                details: DossierDetails(procedureCode: "1.001234", procedureName: "Cấp bản sao", applicantName: "Nguyễn Văn A",
                                        feeLines: [FeeLine(kind: .charge, code: "LP01", name: "Lệ phí", amount: Money(dong: amount))]),
                amountDue: Money(dong: amount), payToken: String(repeating: "t", count: 30) + String(format: "%010d", serial), on: db)
            var rng = SystemRandomNumberGenerator()
            let created = try await IntentStore.insert(
                id: UUID(), partner: service.partner, reference: PaymentReference.random(using: &rng), dossierID: id,
                amount: Money(dong: amount), createRequest: [], source: .api, actor: nil, on: db)
            let pending = try await IntentStore.transition(
                created, to: .pending, event: .gatewayAccepted,
                changes: .init(gatewayTransaction: "PG\(created.reference.rawValue.suffix(10))", checkoutURL: "http://gw/pay"),
                source: .gatewayReply, on: db)
            return Paying(dossierID: id, intent: pending, code: code)
        }
    }

    func callback(_ paying: Paying, code: String = "00", amount: Int64? = nil, attempt: Int = 1, partner: String = "BTH") -> [UInt8] {
        let reference = paying.intent.reference.rawValue
        return Array(
            #"{"LoaiBanTin":"KETQUA","MaLoi":"\#(code)","MaDoiTac":"\#(partner)","MaThamChieu":"\#(reference)","MaGiaoDich":"\#(paying.intent.gatewayTransaction!)","SoTien":\#(amount ?? paying.intent.amount.dong),"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","ThongTinGiaoDich":"Thanh toan le phi ho so \#(paying.code.rawValue)","MaHoSo":"\#(paying.code.rawValue)","LanGui":\#(attempt)}"#.utf8)
    }

    func answer(_ response: HTTPClientResponse, _ service: RunningService) throws -> String {
        _ = try WebhookVerifier(secret: service.secret).verify(headers: { response.headers[$0] }, body: response.body)
        #expect(response.headers["x-partner-code"] == "BTH")
        return try service.json(response)["MaLoi"] as? String ?? ""
    }

    func state(_ service: RunningService, _ paying: Paying) async throws -> (intent: IntentRecord, dossier: DossierRecord) {
        try await service.db.withConnection { db in
            (try await IntentStore.intent(id: paying.intent.id, on: db)!, try await DossierStore.dossier(id: paying.dossierID, on: db)!)
        }
    }

    func count(_ service: RunningService, _ sql: PostgresQuery) async throws -> Int64 {
        try await service.db.query(sql)[0].decode(Int64.self)
    }

    @Test func successIsStoredAppliedAndReplayedByteForByte() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            let body = callback(paying)
            let first = try await service.postCallback(body, id: "evt_success_1")
            #expect(first.status == 200)
            #expect(try answer(first, service) == "00")

            let (intent, dossier) = try await state(service, paying)
            #expect(intent.status == .succeeded)
            #expect(intent.bankCode == "VCB")
            #expect(dossier.status == .paid)
            #expect(dossier.amountPaid == Money(dong: 150_000))
            #expect(dossier.feesFrozen)

            // Stored raw: the exact body bytes and the request's headers.
            let stored = try await service.db.query(
                "SELECT body, headers::text, result_code FROM inbound_messages WHERE webhook_id = 'evt_success_1'")
            #expect(stored.count == 1)
            let (raw, headers, code) = try stored[0].decode(([UInt8], String, String).self)
            #expect(raw == body)
            #expect(headers.contains("webhook-signature"))
            #expect(code == "00")
            let events = try await service.db.withConnection { db in try await IntentStore.events(intentID: paying.intent.id, on: db) }
            #expect(events.map(\.kind) == ["created", "gateway_accepted", "payment_succeeded"])
            #expect(events.last?.inboundMessageID != nil)

            // A retry of the same message: the same answer byte for byte, nothing applied again.
            let retry = try await service.postCallback(callback(paying, attempt: 2), id: "evt_success_1")
            #expect(retry.status == 200)
            #expect(retry.body == first.body)
            #expect(retry.headers["webhook-id"] != first.headers["webhook-id"])
            #expect(try answer(retry, service) == "00")
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages") == 1)
            #expect(try await count(service, "SELECT count(*) FROM intent_events WHERE kind = 'payment_succeeded'") == 1)

            // The same event under another id is answered "already confirmed".
            let other = try await service.postCallback(body, id: "evt_success_2")
            #expect(try answer(other, service) == "02")
            #expect(try await count(service, "SELECT count(*) FROM intent_events WHERE kind = 'payment_succeeded'") == 1)
        }
    }

    @Test func concurrentDuplicatesApplyOnce() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            let body = callback(paying)
            let bodies = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                for _ in 0..<24 {
                    group.addTask { try await service.postCallback(body, id: "evt_dup").body }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(bodies).count == 1)
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages WHERE is_final") == 1)
            #expect(try await count(service, "SELECT count(*) FROM intent_events WHERE kind = 'payment_succeeded'") == 1)
            #expect(try await state(service, paying).dossier.amountPaid == Money(dong: 150_000))
        }
    }

    @Test func unknownReferenceIsKeptAndRetriedAfresh() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            var orphan = paying
            orphan.intent.reference = PaymentReference(rawValue: "PINOTOURS0000000001")!
            let first = try await service.postCallback(callback(orphan), id: "evt_orphan")
            #expect(first.status == 404)
            #expect(try answer(first, service) == "01")
            let second = try await service.postCallback(callback(orphan, attempt: 2), id: "evt_orphan")
            #expect(try answer(second, service) == "01")
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages WHERE intent_id IS NULL AND webhook_id = 'evt_orphan'") == 2)
            #expect(try await state(service, paying).intent.status == .pending)
        }
    }

    /// Verified messages carrying values the database's columns would refuse as they are: each
    /// is stored and answered as the protocol says, never a 500 that every retry repeats.
    @Test func oddFieldValuesAreStoredAndAnswered() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            func sending(_ replace: String, with replacement: String, id: String) async throws -> (Int, String) {
                let text = String(decoding: callback(paying), as: UTF8.self).replacingOccurrences(of: replace, with: replacement)
                let response = try await service.postCallback(Array(text.utf8), id: id)
                return (response.status, try answer(response, service))
            }
            func stored(_ id: String) async throws -> (type: String, reference: String?, code: String) {
                try await service.db.query("SELECT message_type, reference, result_code FROM inbound_messages WHERE webhook_id = \(id)")[0]
                    .decode((String, String?, String).self)
            }
            // A message type with nothing printable in it.
            #expect(try await sending(#""LoaiBanTin":"KETQUA""#, with: #""LoaiBanTin":"é\u0007""#, id: "evt_type") == (400, "03"))
            #expect(try await stored("evt_type") == ("unknown", paying.intent.reference.rawValue, "03"))
            // NUL in the reference: malformed, and stored without the NUL.
            #expect(try await sending(#""MaThamChieu":""#, with: #""MaThamChieu":"\u0000"#, id: "evt_nul") == (400, "03"))
            #expect(try await stored("evt_nul") == ("KETQUA", paying.intent.reference.rawValue, "03"))
            #expect(try await state(service, paying).intent.status == .pending)
            // A bank code longer than any bank's: the payment is recorded, without it.
            #expect(try await sending(#""MaNganHang":"VCB""#, with: #""MaNganHang":"\#(String(repeating: "B", count: 33))""#, id: "evt_bank")
                == (200, "00"))
            let (intent, dossier) = try await state(service, paying)
            #expect(intent.status == .succeeded && intent.bankCode == nil && dossier.status == .paid)
        }
    }

    /// A success whose gateway transaction id is already another intent's: the database refuses
    /// it, so it is kept raw as an orphan and answered 03 (final), not 99 again and again.
    @Test func aMessageTheDatabaseRefusesIsKeptAndAnswered03() async throws {
        try await withRunningService { service in
            let first = try await pendingIntent(service, serial: 1)
            var second = try await pendingIntent(service, serial: 2)
            second.intent.gatewayTransaction = first.intent.gatewayTransaction
            try await service.db.withConnection { db in
                try await db.execute("UPDATE payment_intents SET gateway_txn = NULL WHERE id = \(second.intent.id)")
            }
            #expect(try answer(try await service.postCallback(callback(first), id: "evt_first"), service) == "00")
            let refused = try await service.postCallback(callback(second), id: "evt_clash")
            #expect(refused.status == 400)
            #expect(try answer(refused, service) == "03")
            let again = try await service.postCallback(callback(second, attempt: 2), id: "evt_clash")
            #expect(again.body == refused.body)
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages WHERE webhook_id = 'evt_clash' AND intent_id IS NULL") == 1)
            #expect(try await state(service, second).intent.status == .pending)
        }
    }

    @Test func amountMismatchIsKeptFlaggedAndNotPaid() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            let response = try await service.postCallback(callback(paying, amount: 149_999), id: "evt_amount")
            #expect(response.status == 422)
            #expect(try answer(response, service) == "04")
            let (intent, dossier) = try await state(service, paying)
            #expect(intent.status == .pending)
            #expect(intent.reviewReason == "amount_mismatch")
            #expect(dossier.status == .awaitingPayment)
            #expect(try await count(service, "SELECT count(*) FROM exceptions WHERE kind = 'amount_mismatch' AND status = 'open'") == 1)
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages") == 1)
        }
    }

    @Test func failureAfterSuccessChangesNothingButIsFlagged() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            #expect(try answer(try await service.postCallback(callback(paying), id: "evt_ok"), service) == "00")
            let late = try await service.postCallback(callback(paying, code: "51"), id: "evt_fail")
            #expect(try answer(late, service) == "02")
            let (intent, dossier) = try await state(service, paying)
            #expect(intent.status == .succeeded)
            #expect(intent.reviewReason == "conflicting_outcome")
            #expect(dossier.status == .paid)
        }
    }

    @Test func successAfterExpiryRecordsTheMoneyAsACorrection() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            #expect(try answer(try await service.postCallback(callback(paying, code: "11"), id: "evt_exp"), service) == "00")
            #expect(try await state(service, paying).intent.status == .expired)
            #expect(try answer(try await service.postCallback(callback(paying), id: "evt_late"), service) == "00")
            let (intent, dossier) = try await state(service, paying)
            #expect(intent.status == .succeeded)
            #expect(intent.reviewReason == "late_success_after_expiry")
            #expect(dossier.status == .paid)
            let kinds = try await service.db.withConnection { db in try await IntentStore.events(intentID: paying.intent.id, on: db) }.map(\.kind)
            #expect(kinds.suffix(2) == ["payment_expired", "late_success_after_expiry"])
            #expect(try await count(service, "SELECT count(*) FROM exceptions WHERE kind = 'late_success_after_expiry'") == 1)
        }
    }

    @Test func secondFullPaymentMakesTheDossierOverpaid() async throws {
        try await withRunningService { service in
            let first = try await pendingIntent(service)
            #expect(try answer(try await service.postCallback(callback(first, code: "24"), id: "evt_cancel"), service) == "00")
            // A second attempt for the same dossier, after the first was cancelled.
            let second: IntentRecord = try await service.db.withTransaction { db in
                let created = try await IntentStore.insert(
                    id: UUID(), partner: service.partner, reference: PaymentReference(rawValue: "PISECOND000000000001")!,
                    dossierID: first.dossierID, amount: first.intent.amount, createRequest: [], source: .api, actor: nil, on: db)
                return try await IntentStore.transition(
                    created, to: .pending, event: .gatewayAccepted, changes: .init(gatewayTransaction: "PGSECOND"), source: .gatewayReply, on: db)
            }
            var secondPaying = first
            secondPaying.intent = second
            #expect(try answer(try await service.postCallback(callback(secondPaying), id: "evt_pay2"), service) == "00")
            // The "cancelled" one was in fact paid too: the money moved.
            #expect(try answer(try await service.postCallback(callback(first), id: "evt_pay1"), service) == "00")
            let dossier = try await state(service, first).dossier
            #expect(dossier.status == .overpaid)
            #expect(dossier.amountPaid == Money(dong: 300_000))
            #expect(try await count(service, "SELECT count(*) FROM exceptions WHERE kind = 'duplicate_payment' AND status = 'open'") == 1)
        }
    }

    @Test func forgedStaleOrOversizedCallbacksStoreNothing() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            let body = callback(paying)
            let before = try await service.tableCounts()

            let forged = try await service.postCallback(body, secret: WebhookSecret.generate())
            #expect(forged.status == 401)
            #expect(try answer(forged, service) == "97")
            // The exact ±300 s boundary is checked with a fixed clock in SigningTests; over HTTP
            // the margin covers the time a loaded machine takes between signing and verifying.
            let stale = try await service.postCallback(body, timestamp: Int64(Date().timeIntervalSince1970) - 301)
            #expect(stale.status == 401)
            let future = try await service.postCallback(body, timestamp: Int64(Date().timeIntervalSince1970) + 360)
            #expect(future.status == 401)
            let unknownPartner = try await service.postCallback(body, partner: "XYZ")
            #expect(unknownPartner.status == 401)
            #expect(unknownPartner.headers["webhook-signature"] == nil)
            let mismatch = try await service.postCallback(callback(paying, partner: "XYZ"))
            #expect(mismatch.status == 401)
            let huge = try await service.postCallback([UInt8](repeating: 0x20, count: 65 * 1024))
            #expect(huge.status == 413)
            // A configured partner gets every reply signed, the 413 included.
            #expect(try answer(huge, service) == "03")

            var headers = HTTPHeaders()
            headers.add(name: "x-partner-code", value: "BTH")
            headers.add(name: "webhook-id", value: "evt_x")
            headers.add(name: "webhook-timestamp", value: "\(Int64(Date().timeIntervalSince1970))")
            headers.add(name: "webhook-signature", value: "v1,not-base64!")
            let malformed = try await service.http.execute(
                HTTPClientRequest(method: .post, url: service.baseURL + "/v1/callbacks/portal", headers: headers, body: body))
            #expect(malformed.status == 401)
            #expect(try answer(malformed, service) == "97")
            // An invalid webhook-id: refused, and the refusal signed with a fresh id of its own.
            var badID = headers
            badID.replaceOrAdd(name: "webhook-id", value: "evt.bad")
            let refused = try await service.http.execute(
                HTTPClientRequest(method: .post, url: service.baseURL + "/v1/callbacks/portal", headers: badID, body: body))
            #expect(refused.status == 401)
            #expect(try answer(refused, service) == "97")

            #expect(try await service.tableCounts() == before)
            #expect(try await state(service, paying).intent.status == .pending)
            let metrics = String(decoding: try await service.request(.get, "/metrics").body, as: UTF8.self)
            #expect(metrics.contains("feerecon_callbacks_rejected_total"))
        }
    }

    @Test func signedButMalformedBodyIsKeptAndAnswered03() async throws {
        try await withRunningService { service in
            let response = try await service.postCallback(Array(#"{"LoaiBanTin":"KETQUA","SoTien":1.5}"#.utf8), id: "evt_bad")
            #expect(response.status == 400)
            #expect(try answer(response, service) == "03")
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages WHERE result_code = '03'") == 1)
            let again = try await service.postCallback(Array("not json".utf8), id: "evt_bad")
            #expect(again.body == response.body)
        }
    }

    /// The body names another partner and is broken besides: the partner check comes first, so
    /// it is a 97, not remembered, and a correct retry under the same id is processed afresh.
    @Test func aForeignPartnerInABrokenBodyIs97AndNotRemembered() async throws {
        try await withRunningService { service in
            let paying = try await pendingIntent(service)
            for broken in [#"{"LoaiBanTin":"KETQUA","MaDoiTac":"XYZ"}"#, #"{"MaDoiTac":"XYZ","SoTien":1.5}"#, #"{"MaDoiTac":7}"#] {
                let response = try await service.postCallback(Array(broken.utf8), id: "evt_foreign")
                #expect(response.status == 401)
                #expect(try answer(response, service) == "97")
            }
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages") == 0)
            #expect(try answer(try await service.postCallback(callback(paying), id: "evt_foreign"), service) == "00")
        }
    }
}

extension CallbackTests {
    /// Out-of-order outcomes under concurrency: an expiry, a failure and a success for the same
    /// payment, each delivered twice, all at once in random order. The money that moved is
    /// recorded exactly once whatever the order.
    @Test func outOfOrderOutcomesUnderConcurrencyConvergeOnTheSuccess() async throws {
        try await withRunningService { service in
            var payings: [Paying] = []
            for serial in 1...40 { payings.append(try await pendingIntent(service, serial: serial)) }
            var deliveries: [([UInt8], String)] = []
            for (index, paying) in payings.enumerated() {
                for code in ["11", "51", "00"] {
                    let body = callback(paying, code: code)
                    deliveries.append((body, "evt_\(index)_\(code)"))
                    deliveries.append((body, "evt_\(index)_\(code)"))
                }
            }
            var generator = SystemRandomNumberGenerator()
            deliveries.shuffle(using: &generator)
            let shuffled = deliveries
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (body, id) in shuffled {
                    group.addTask {
                        let response = try await service.postCallback(body, id: id)
                        #expect(response.status == 200)
                    }
                }
                try await group.waitForAll()
            }
            for paying in payings {
                let (intent, dossier) = try await state(service, paying)
                #expect(intent.status == .succeeded)
                #expect(dossier.amountPaid == paying.intent.amount)
                let kinds = try await service.db.withConnection { db in try await IntentStore.events(intentID: paying.intent.id, on: db) }
                    .map(\.kind)
                #expect(kinds.filter { ["payment_succeeded", "late_success_after_expiry", "success_after_failure"].contains($0) }.count == 1)
            }
            #expect(try await count(service, "SELECT count(*) FROM inbound_messages WHERE is_final") == 120)
            #expect(try await count(service, "SELECT count(*) FROM outbox_notifications") == 40)
        }
    }
}
