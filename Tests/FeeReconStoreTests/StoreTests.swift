import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import Postgres
import TestSupport
import Testing

/// The stores' own rules, which the HTTP tests reach only on their happy paths.
@Suite(.timeLimit(.minutes(5))) struct IntentStoreTests {
    @Test func onlyEdgesOfTheStateGraphAreTaken() async throws {
        try await withFixture { fixture in
            let intent = try await fixture.intent(dossierID: try await fixture.dossier())
            var refused = 0
            for event in IntentEventKind.allCases {
                for target in IntentStatus.allCases where !IntentStateMachine.allows(from: .created, event: event, to: target) {
                    let edge = "created -[\(event.rawValue)]-> \(target.rawValue)"
                    do {
                        try await fixture.client.withConnection { db in
                            try await IntentStore.transition(intent, to: target, event: event, source: .system, on: db)
                        }
                        Issue.record("took \(edge)")
                    } catch is IntentStore.ForbiddenTransition {
                        refused += 1
                    } catch {
                        Issue.record("\(edge): \(error)")
                    }
                }
            }
            #expect(refused > 100)
            // Nothing moved and no event was written.
            let stored = try await fixture.client.withConnection { db in try await IntentStore.intent(id: intent.id, on: db) }
            #expect(stored?.status == .created && stored?.version == intent.version)
            let events = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: intent.id, on: db) }
            #expect(events.map(\.kind) == ["created"])

            // An allowed edge moves it and writes its event, in the same transaction.
            let pending = try await fixture.move(intent, to: .pending, by: .gatewayAccepted)
            #expect(pending.status == .pending && pending.version == intent.version + 1)
            let after = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: intent.id, on: db) }
            #expect(after.map(\.kind) == ["created", "gateway_accepted"])
            #expect(after.last?.fromStatus == "created" && after.last?.toStatus == "pending")
        }
    }

    @Test func aStaleVersionIsAConcurrentModification() async throws {
        try await withFixture { fixture in
            let stale = try await fixture.intent(dossierID: try await fixture.dossier())
            try await fixture.move(stale, to: .pending, by: .gatewayAccepted)
            // The same edge from the stale copy: the row is no longer at that version.
            await #expect(throws: IntentStore.ConcurrentModification.self) {
                try await fixture.move(stale, to: .unknown, by: .gatewayUnreachable)
            }
            let stored = try await fixture.client.withConnection { db in try await IntentStore.intent(id: stale.id, on: db) }
            #expect(stored?.status == .pending)
            let events = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: stale.id, on: db) }
            #expect(events.map(\.kind) == ["created", "gateway_accepted"])
        }
    }

    /// Two transactions move the same version at once: exactly one wins, the other is told.
    @Test func acceptingManyMovesOnlyRowsStillAsRead() async throws {
        try await withFixture { fixture in
            let apiKey = try await AccessStoreTests.key(fixture).id
            let fresh = try await fixture.intent(dossierID: try await fixture.dossier())
            let keyed = try await fixture.intent(dossierID: try await fixture.dossier())
            let moved = try await fixture.intent(dossierID: try await fixture.dossier())
            _ = try await fixture.client.withTransaction { db in
                try await IdempotencyStore.claim(apiKey: apiKey, key: "k-accept", requestHash: SHA256.hash(Array("r".utf8)), on: db)
            }
            try await fixture.client.withConnection { db in
                try await IdempotencyStore.attach(apiKey: apiKey, key: "k-accept", intentID: keyed.id, on: db)
            }
            // Moved on by someone else since it was read: its acceptance must not apply.
            try await fixture.move(moved, to: .unknown, by: .gatewayUnreachable)

            let stamp = Date(timeIntervalSince1970: 1_700_000_000.123456)
            let deadline = Date(timeIntervalSince1970: 1_700_000_900)
            func acceptance(_ intent: IntentRecord, _ txn: String, key: Bool = false) -> IntentStore.Acceptance {
                IntentStore.Acceptance(
                    intent: intent, gatewayTransaction: txn, checkoutURL: "https://gw.example/pay/\(txn)", expiresAt: deadline,
                    updatedAt: stamp,
                    completion: key
                        ? .init(apiKey: apiKey, key: "k-accept", status: 201, body: Array(#"{"id":"keyed"}"#.utf8), updatedAt: stamp) : nil)
            }
            let accepted = try await fixture.client.withConnection { db in
                try await IntentStore.accept(
                    many: [acceptance(fresh, "GD-A1"), acceptance(keyed, "GD-A2", key: true), acceptance(moved, "GD-A3")], on: db)
            }
            #expect(Set(accepted.keys) == [fresh.id, keyed.id])
            for (intent, txn) in [(fresh, "GD-A1"), (keyed, "GD-A2")] {
                let row = try #require(accepted[intent.id])
                #expect(row.status == .pending && row.version == intent.version + 1)
                #expect(row.gatewayTransaction == txn && row.checkoutURL == "https://gw.example/pay/\(txn)")
                #expect(row.expiresAt == deadline && row.updatedAt == stamp)
                // What the caller rendered its answer from is what was stored.
                let expected = acceptance(intent, txn).accepted
                #expect(row.status == expected.status && row.version == expected.version && row.updatedAt == expected.updatedAt)
                let events = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: intent.id, on: db) }
                #expect(events.map(\.kind) == ["created", "gateway_accepted"])
                #expect(events.last?.fromStatus == "created" && events.last?.toStatus == "pending")
            }
            let untouched = try await fixture.client.withConnection { db in try await IntentStore.intent(id: moved.id, on: db) }
            #expect(untouched?.status == .unknown && untouched?.gatewayTransaction == nil)
            let movedEvents = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: moved.id, on: db) }
            #expect(movedEvents.map(\.kind) == ["created", "gateway_unreachable"])
            // Only the accepted intent's key got its answer.
            let replay = try await fixture.client.withTransaction { db in
                try await IdempotencyStore.claim(apiKey: apiKey, key: "k-accept", requestHash: SHA256.hash(Array("r".utf8)), on: db)
            }
            guard case .replay(let status, let body) = replay else { Issue.record("not answered: \(replay)"); return }
            #expect(status == 201 && body == Array(#"{"id":"keyed"}"#.utf8))
            // Accepting again is a no-op: the rows are no longer at the versions read.
            let again = try await fixture.client.withConnection { db in
                try await IntentStore.accept(many: [acceptance(fresh, "GD-A1")], on: db)
            }
            #expect(again.isEmpty)
        }
    }

    /// `transition(many:)` builds its answer from the records it was given; it must be exactly
    /// what the database then holds, and a row that moved since it was read fails the statement.
    @Test func transitionsInBulkReturnTheRowsAsStored() async throws {
        try await withFixture { fixture in
            func pending() async throws -> IntentRecord {
                let created = try await fixture.intent(dossierID: try await fixture.dossier())
                return try await fixture.move(created, to: .pending, by: .gatewayAccepted)
            }
            let paid = try await pending(), failed = try await pending()
            let messageID = try #require(try await fixture.insertMessage(webhookID: "msg_bulk_1", code: "00"))
            // Sub-microsecond digits: the server rounds them, and the record must say what it kept.
            let paidAt = Date(timeIntervalSince1970: 1_700_000_000.1234567)
            let transitions = [
                IntentStore.Transition(
                    intent: paid, to: .succeeded, event: .paymentSucceeded,
                    changes: .init(gatewayTransaction: "GD-BULK-1", bankCode: "NCB", paidAt: paidAt),
                    messageID: messageID, detail: ["gateway_txn": "GD-BULK-1"]),
                IntentStore.Transition(
                    intent: failed, to: .failed, event: .paymentFailed,
                    changes: .init(gatewayTransaction: "GD-BULK-2", bankCode: nil, paidAt: nil),
                    messageID: messageID, detail: [:]),
            ]
            let returned = try await fixture.client.withTransaction { db in
                try await IntentStore.transition(many: transitions, source: .callback, on: db)
            }
            #expect(returned.map(\.id) == [paid.id, failed.id])
            for record in returned {
                let stored = try await fixture.client.withConnection { db in try await IntentStore.intent(id: record.id, on: db) }
                #expect(stored == record)
            }
            #expect(returned[0].status == .succeeded && returned[0].gatewayTransaction == "GD-BULK-1" && returned[0].bankCode == "NCB")
            #expect(returned[0].paidAt != nil && returned[0].paidAt != paidAt)
            #expect(returned[1].status == .failed && returned[1].paidAt == nil && returned[1].version == failed.version + 1)

            // The same transitions again: the rows are no longer at the versions read.
            let retry = IntentStore.Transition(
                intent: paid, to: .succeeded, event: .paymentSucceeded, changes: .init(gatewayTransaction: "GD-BULK-1"),
                messageID: messageID, detail: [:])
            await #expect(throws: IntentStore.ConcurrentModification.self) {
                try await fixture.client.withTransaction { db in
                    try await IntentStore.transition(many: [retry], source: .callback, on: db)
                }
            }
            let events = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: paid.id, on: db) }
            #expect(events.map(\.kind) == ["created", "gateway_accepted", "payment_succeeded"])
        }
    }

    /// Two payments of one dossier succeed in concurrent transactions: the one that waited for
    /// the dossier's lock must count the other's payment once it is committed, so the dossier
    /// ends overpaid with both, not paid with one.
    @Test func concurrentSuccessesForOneDossierAreBothCounted() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier()
            let first = try await fixture.move(try await fixture.intent(dossierID: dossierID), to: .pending, by: .gatewayAccepted)
            let expired = try await fixture.move(first, to: .expired, by: .paymentExpired)
            let second = try await fixture.move(try await fixture.intent(dossierID: dossierID), to: .pending, by: .gatewayAccepted)

            let (ready, readied) = AsyncStream<Void>.makeStream()
            let (release, released) = AsyncStream<Void>.makeStream()
            // The late success of the first, committed only once the second is waiting for the lock.
            let holder = Task {
                try await fixture.client.withTransaction { db in
                    _ = try await IntentStore.transition(expired, to: .succeeded, event: .lateSuccessAfterExpiry, source: .callback, on: db)
                    let coverage = try await DossierStore.recomputePaid(dossierID: dossierID, on: db)
                    readied.yield()
                    for await _ in release { break }
                    return coverage
                }
            }
            for await _ in ready { break }
            let waiter = Task {
                try await fixture.client.withTransaction { db in
                    _ = try await IntentStore.transition(second, to: .succeeded, event: .paymentSucceeded, source: .callback, on: db)
                    return try await DossierStore.recomputePaid(dossierIDs: [dossierID], on: db)[dossierID]
                }
            }
            try await poll(until: {
                try await fixture.client.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                    """)[0].decode(Int64.self) == 1
            }, deadline: .seconds(20), "the second transaction waits for the dossier's lock")
            released.yield()
            released.finish()
            let held = try await holder.value
            #expect(held.before == .awaitingPayment && held.status == .paid && held.paid == Money(dong: 150_000))
            let waited = try #require(try await waiter.value)
            #expect(waited.before == .paid && waited.status == .overpaid && waited.paid == Money(dong: 300_000))
            let stored = try await fixture.client.query("SELECT status, amount_paid FROM dossiers WHERE id = \(dossierID)")[0]
                .decode((String, Int64).self)
            #expect(stored.0 == "overpaid" && stored.1 == 300_000)
        }
    }

    @Test func racingTransitionsLetExactlyOneWin() async throws {
        try await withFixture { fixture in
            let intent = try await fixture.move(
                try await fixture.intent(dossierID: try await fixture.dossier()), to: .pending, by: .gatewayAccepted)
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for (target, event) in [(IntentStatus.succeeded, IntentEventKind.paymentSucceeded), (.expired, .paymentExpired)] {
                    group.addTask {
                        do {
                            try await fixture.move(intent, to: target, by: event)
                            return "won"
                        } catch is IntentStore.ConcurrentModification {
                            return "lost"
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(outcomes.sorted() == ["lost", "won"])
            let events = try await fixture.client.withConnection { db in try await IntentStore.events(intentID: intent.id, on: db) }
            #expect(events.count == 3)
        }
    }

    @Test func concurrentClaimsOfDueChecksAreDisjointAndLeased() async throws {
        try await withFixture { fixture in
            var due: Set<UUID> = []
            for _ in 0..<10 { due.insert(try await fixture.intent(dossierID: try await fixture.dossier()).id) }
            // Not due yet, and no longer open: never claimed.
            let later = try await fixture.intent(dossierID: try await fixture.dossier(), firstCheck: .seconds(3_600))
            let closed = try await fixture.move(
                try await fixture.intent(dossierID: try await fixture.dossier()), to: .failed, by: .gatewayRejected)
            try await fixture.client.execute("UPDATE payment_intents SET next_check_at = now() - interval '1 minute' WHERE id = \(closed.id)")

            // A holds its claim open while B claims: B skips A's locked rows.
            let (first, second) = try await fixture.client.withTransaction { a in
                let first = try await IntentStore.claimDueChecks(limit: 4, lease: .seconds(120), on: a)
                let second = try await fixture.client.withTransaction { b in
                    try await IntentStore.claimDueChecks(limit: 100, lease: .seconds(120), on: b)
                }
                return (first.map(\.intent.id), second.map(\.intent.id))
            }
            #expect(first.count == 4)
            #expect(second.count == 6)
            #expect(Set(first).isDisjoint(with: second))
            #expect(Set(first + second) == due)
            #expect(!Set(first + second).contains(later.id) && !Set(first + second).contains(closed.id))

            // Leased: nobody gets them again until the lease runs out.
            #expect(try await fixture.client.withTransaction { db in
                try await IntentStore.claimDueChecks(limit: 100, lease: .seconds(120), on: db)
            }.isEmpty)
            let leased = try await fixture.client.query("""
                SELECT bool_and(next_check_at > now() + interval '110 seconds') FROM payment_intents WHERE id = ANY(\(Array(due)))
                """)[0].decode(Bool.self)
            #expect(leased)
            // Once the lease has passed they are due again, with their checks counted.
            try await fixture.client.execute("""
                UPDATE payment_intents SET next_check_at = now() - interval '1 second' WHERE id = ANY(\(Array(due)))
                """)
            let again = try await fixture.client.withTransaction { db in
                try await IntentStore.claimDueChecks(limit: 100, lease: .seconds(120), on: db)
            }
            #expect(Set(again.map(\.intent.id)) == due)
            #expect(again.allSatisfy { $0.checksDone == 0 })
        }
    }

    /// Claims racing from separate tasks never share an intent, however they interleave.
    @Test func racingClaimsNeverShareAnIntent() async throws {
        try await withFixture(maximumConnections: 8) { fixture in
            var due: Set<UUID> = []
            for _ in 0..<24 { due.insert(try await fixture.intent(dossierID: try await fixture.dossier()).id) }
            let claims = try await withThrowingTaskGroup(of: [UUID].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await fixture.client.withTransaction { db in
                            try await IntentStore.claimDueChecks(limit: 8, lease: .seconds(120), on: db).map(\.intent.id)
                        }
                    }
                }
                return try await group.reduce(into: [[UUID]]()) { $0.append($1) }
            }
            let all = claims.flatMap { $0 }
            #expect(all.count == Set(all).count, "an intent was claimed twice")
            #expect(Set(all).isSubset(of: due))
            #expect(all.count == 24)
        }
    }

    @Test func subSecondLeaseAndScheduleAreKept() async throws {
        try await withFixture { fixture in
            let intent = try await fixture.intent(dossierID: try await fixture.dossier())
            let lease = try await fixture.client.withTransaction { db in
                _ = try await IntentStore.claimDueChecks(limit: 1, lease: .milliseconds(1_500), on: db)
                return try await db.query("SELECT extract(epoch FROM next_check_at - now())::text FROM payment_intents WHERE id = \(intent.id)")[0]
                    .decode(String.self)
            }
            #expect(Double(lease) == 1.5)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct OutboxStoreTests {
    @Test func concurrentClaimsAreDisjointAndLeased() async throws {
        try await withFixture { fixture in
            let dossierID = try await fixture.dossier()
            var due: Set<Int64> = []
            for _ in 0..<6 { due.insert(try await fixture.notification(dossierID: dossierID)) }
            // Delivered and failed ones are never claimed.
            let delivered = try await fixture.notification(dossierID: dossierID)
            let failed = try await fixture.notification(dossierID: dossierID)
            try await fixture.client.withTransaction { db in
                try await OutboxStore.recordAttempt(
                    id: delivered, startedAt: Date(), duration: .milliseconds(5), httpStatus: 200, error: nil,
                    delivered: true, retryAfter: nil, on: db)
                try await OutboxStore.recordAttempt(
                    id: failed, startedAt: Date(), duration: .milliseconds(5), httpStatus: 500, error: "HTTP 500",
                    delivered: false, retryAfter: nil, on: db)
            }
            try await fixture.client.withConnection { db in
                try await DossierStore.setNotifyURL(agencyID: fixture.agencyID, url: "https://onestop.example/notify", on: db)
            }

            let (first, second) = try await fixture.client.withTransaction { a in
                let first = try await OutboxStore.claimDue(limit: 2, lease: .seconds(90), on: a)
                let second = try await fixture.client.withTransaction { b in try await OutboxStore.claimDue(limit: 100, lease: .seconds(90), on: b) }
                return (first, second)
            }
            #expect(first.count == 2 && second.count == 4)
            #expect(Set(first.map(\.notification.id)).isDisjoint(with: second.map(\.notification.id)))
            #expect(Set((first + second).map(\.notification.id)) == due)
            #expect((first + second).allSatisfy { $0.url == "https://onestop.example/notify" })
            #expect(try await fixture.client.withTransaction { db in try await OutboxStore.claimDue(limit: 100, lease: .seconds(90), on: db) }
                .isEmpty)
            let leased = try await fixture.client.query("""
                SELECT bool_and(next_attempt_at > now() + interval '80 seconds') FROM outbox_notifications WHERE id = ANY(\(Array(due)))
                """)[0].decode(Bool.self)
            #expect(leased)
        }
    }

    @Test func racingClaimsNeverShareANotification() async throws {
        try await withFixture(maximumConnections: 8) { fixture in
            let dossierID = try await fixture.dossier()
            for _ in 0..<20 { _ = try await fixture.notification(dossierID: dossierID) }
            let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await fixture.client.withTransaction { db in
                            try await OutboxStore.claimDue(limit: 7, lease: .seconds(90), on: db).map(\.notification.id)
                        }
                    }
                }
                return try await group.reduce(into: [[Int64]]()) { $0.append($1) }
            }
            let all = claims.flatMap { $0 }
            #expect(all.count == Set(all).count)
            #expect(all.count == 20)
        }
    }

    /// Two deliveries of one notification that overlapped (a lease outlived) are both recorded,
    /// numbered in the order they are recorded, and a success is not undone by the failure
    /// recorded after it. Only a failed notification is replayed, with its schedule begun again.
    @Test func overlappingAttemptsAreAllRecordedAndASuccessSticks() async throws {
        try await withFixture { fixture in
            let id = try await fixture.notification(dossierID: try await fixture.dossier())
            func record(_ status: Int, delivered: Bool, retry: Duration?) async throws -> Int {
                try await fixture.client.withTransaction { db in
                    try await OutboxStore.recordAttempt(
                        id: id, startedAt: Date(), duration: .milliseconds(4), httpStatus: status, error: delivered ? nil : "HTTP \(status)",
                        delivered: delivered, retryAfter: retry, on: db)
                }
            }
            func stored() async throws -> NotificationRecord {
                try #require(try await fixture.client.withConnection { db in try await OutboxStore.notification(id: id, on: db) })
            }
            let agencies = [fixture.agencyID]
            #expect(try await record(500, delivered: false, retry: .seconds(60)) == 1)
            // Pending on its schedule: not replayed.
            #expect(try await fixture.client.withConnection { db in try await OutboxStore.replay(id: id, agencyIDs: agencies, on: db) } == false)
            #expect(try await record(200, delivered: true, retry: nil) == 2)
            #expect(try await record(503, delivered: false, retry: nil) == 3)
            let after = try await stored()
            #expect(after.status == "delivered" && after.deliveredAt != nil && after.nextAttemptAt == nil)
            #expect(after.attempts == 3 && after.lastHTTPStatus == 200 && after.lastError == nil)
            let attempts = try await fixture.client.withConnection { db in try await OutboxStore.attempts(notificationID: id, on: db) }
            #expect(attempts.map(\.attempt) == [1, 2, 3] && attempts.map(\.httpStatus) == [500, 200, 503])
            #expect(try await fixture.client.withConnection { db in try await OutboxStore.replay(id: id, agencyIDs: agencies, on: db) } == false)

            let other = try await fixture.notification(dossierID: try await fixture.dossier())
            _ = try await fixture.client.withTransaction { db in
                try await OutboxStore.recordAttempt(
                    id: other, startedAt: Date(), duration: .milliseconds(4), httpStatus: 500, error: "HTTP 500",
                    delivered: false, retryAfter: nil, on: db)
            }
            #expect(try await fixture.client.withConnection { db in try await OutboxStore.replay(id: other, agencyIDs: [fixture.agencyID + 1_000], on: db) } == false)
            #expect(try await fixture.client.withConnection { db in try await OutboxStore.replay(id: other, agencyIDs: agencies, on: db) })
            let replayed = try #require(try await fixture.client.withConnection { db in try await OutboxStore.notification(id: other, on: db) })
            #expect(replayed.status == "pending" && replayed.attempts == 1 && replayed.scheduleStart == 1 && replayed.nextAttemptAt != nil)
        }
    }

    /// A retry scheduled 1.5 s out is 1.5 s out, and a lease of 1.5 s is 1.5 s.
    @Test func subSecondDelaysAreKept() async throws {
        try await withFixture { fixture in
            let id = try await fixture.notification(dossierID: try await fixture.dossier())
            let (lease, retry) = try await fixture.client.withTransaction { db in
                _ = try await OutboxStore.claimDue(limit: 1, lease: .milliseconds(1_500), on: db)
                let lease = try await db.query(
                    "SELECT extract(epoch FROM next_attempt_at - now())::text FROM outbox_notifications WHERE id = \(id)")[0].decode(String.self)
                try await OutboxStore.recordAttempt(
                    id: id, startedAt: Date(), duration: .milliseconds(3), httpStatus: 503, error: "HTTP 503",
                    delivered: false, retryAfter: .milliseconds(1_500), on: db)
                let retry = try await db.query(
                    "SELECT extract(epoch FROM next_attempt_at - now())::text FROM outbox_notifications WHERE id = \(id)")[0].decode(String.self)
                return (lease, retry)
            }
            #expect(Double(lease) == 1.5)
            #expect(Double(retry) == 1.5)
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct AccessStoreTests {
    static func key(_ fixture: StoreFixture, name: String = "one-stop") async throws -> APIKeyStore.IssuedKey {
        try await fixture.client.withTransaction { db in
            try await APIKeyStore.create(name: name, agencyIDs: [fixture.agencyID], on: db)
        }
    }

    static func authenticate(_ presented: String, _ fixture: StoreFixture) async throws -> APIClient? {
        try await fixture.client.withConnection { db in try await APIKeyStore.authenticate(presented, on: db) }
    }

    @Test func apiKeysAuthenticateOnlyWhenRightAndLive() async throws {
        try await withFixture { fixture in
            let issued = try await Self.key(fixture)
            let other = try await Self.key(fixture, name: "other")
            let client = try #require(try await Self.authenticate(issued.plaintext, fixture))
            #expect(client.id == issued.id)
            #expect(client.name == "one-stop")
            #expect(client.agencyIDs == [fixture.agencyID])

            // Only the digest is stored.
            let stored = try await fixture.client.query("SELECT prefix, secret_sha256 FROM api_keys WHERE id = \(issued.id)")[0]
                .decode((String, [UInt8]).self)
            #expect(!issued.plaintext.contains(Hex.encode(stored.1)))
            #expect(issued.plaintext.hasPrefix("frk_" + stored.0 + "_"))

            let prefix = "frk_" + stored.0 + "_"
            let secret = String(issued.plaintext.dropFirst(prefix.count))
            let otherSecret = String(other.plaintext.split(separator: "_", maxSplits: 2)[2])
            var flipped = Array(secret)
            flipped[0] = flipped[0] == "A" ? "B" : "A"
            let wrong = [
                prefix + String(flipped),                  // one character off
                prefix + otherSecret,                      // another key's secret
                prefix + secret + "x",                     // longer
                prefix + String(secret.dropLast()),        // shorter
                "frk_ZZZZZZZZZZZZ_" + secret,              // unknown prefix
            ]
            for presented in wrong { #expect(try await Self.authenticate(presented, fixture) == nil, "\(presented.prefix(20))…") }

            let malformed = [
                "", "frk_", "frk_" + stored.0, prefix, "Bearer " + issued.plaintext, issued.plaintext.uppercased(),
                "frk_short_" + secret, "frk_" + String(repeating: "A", count: 17) + "_" + secret,
                prefix + String(repeating: "s", count: 129), "frk_ÄÄÄÄÄÄÄÄ_" + secret, issued.plaintext + " ",
            ]
            for presented in malformed { #expect(try await Self.authenticate(presented, fixture) == nil) }

            // Revoked: refused from then on; the other key is unaffected.
            try await fixture.client.execute("UPDATE api_keys SET revoked_at = now() WHERE id = \(issued.id)")
            #expect(try await Self.authenticate(issued.plaintext, fixture) == nil)
            #expect(try await Self.authenticate(other.plaintext, fixture)?.id == other.id)
            let exists = try await fixture.client.withConnection { db in try await APIKeyStore.exists(name: "one-stop", on: db) }
            #expect(!exists)
        }
    }

    @Test func idempotencyKeysClaimReplayAndMismatch() async throws {
        try await withFixture { fixture in
            let apiKey = try await Self.key(fixture).id
            let otherKey = try await Self.key(fixture, name: "other").id
            let request = SHA256.hash(Array(#"{"dossier":"1"}"#.utf8))
            let otherRequest = SHA256.hash(Array(#"{"dossier":"2"}"#.utf8))
            func claim(_ key: String, _ hash: [UInt8], by owner: UUID? = nil) async throws -> IdempotencyStore.Claim {
                try await fixture.client.withTransaction { db in
                    try await IdempotencyStore.claim(apiKey: owner ?? apiKey, key: key, requestHash: hash, on: db)
                }
            }
            func describe(_ claim: IdempotencyStore.Claim) -> String {
                switch claim {
                case .claimed: "claimed"
                case .replay(let status, let body): "replay \(status) \(String(decoding: body, as: UTF8.self))"
                case .inProgress(let intent): "in progress \(intent.map { $0.uuidString } ?? "-")"
                case .mismatch: "mismatch"
                }
            }

            #expect(describe(try await claim("k1", request)) == "claimed")
            // Same request again before it is answered: in progress, with no intent yet.
            #expect(describe(try await claim("k1", request)) == "in progress -")
            #expect(describe(try await claim("k1", otherRequest)) == "mismatch")
            // Keys are per API key.
            #expect(describe(try await claim("k1", otherRequest, by: otherKey)) == "claimed")

            let intent = try await fixture.intent(dossierID: try await fixture.dossier())
            try await fixture.client.withConnection { db in
                try await IdempotencyStore.attach(apiKey: apiKey, key: "k1", intentID: intent.id, on: db)
            }
            #expect(describe(try await claim("k1", request)) == "in progress \(intent.id.uuidString)")
            try await fixture.client.withConnection { db in
                try await IdempotencyStore.complete(apiKey: apiKey, key: "k1", status: 201, body: Array(#"{"id":"x"}"#.utf8), on: db)
                // The first answer stays the answer.
                try await IdempotencyStore.complete(apiKey: apiKey, key: "k1", status: 500, body: Array("{}".utf8), on: db)
            }
            #expect(describe(try await claim("k1", request)) == #"replay 201 {"id":"x"}"#)
            #expect(describe(try await claim("k1", otherRequest)) == "mismatch")

            // Released before anything was created: the key may be used again, for any request.
            #expect(describe(try await claim("k2", request)) == "claimed")
            try await fixture.client.withConnection { db in try await IdempotencyStore.release(apiKey: apiKey, key: "k2", on: db) }
            #expect(describe(try await claim("k2", otherRequest)) == "claimed")
            // Release does not forget a key that has an intent or an answer.
            try await fixture.client.withConnection { db in try await IdempotencyStore.release(apiKey: apiKey, key: "k1", on: db) }
            #expect(describe(try await claim("k1", request)) == #"replay 201 {"id":"x"}"#)

            // Purged after the retention.
            try await fixture.client.execute("""
                UPDATE idempotency_keys SET created_at = now() - interval '49 hours' WHERE api_key_id = \(apiKey) AND key = 'k1'
                """)
            let purged = try await fixture.client.withConnection { db in
                try await IdempotencyStore.purge(olderThan: IdempotencyStore.retention.components.seconds, on: db)
            }
            #expect(purged == 1)
            #expect(describe(try await claim("k1", otherRequest)) == "claimed")
        }
    }

    /// The same key claimed from several connections at once: exactly one claims it.
    @Test func concurrentClaimsOfOneKeyHaveOneWinner() async throws {
        try await withFixture(maximumConnections: 8) { fixture in
            let apiKey = try await Self.key(fixture).id
            let request = SHA256.hash(Array("same".utf8))
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let claim = try await fixture.client.withTransaction { db in
                            try await IdempotencyStore.claim(apiKey: apiKey, key: "race", requestHash: request, on: db)
                        }
                        if case .claimed = claim { return true }
                        return false
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1)
        }
    }
}
