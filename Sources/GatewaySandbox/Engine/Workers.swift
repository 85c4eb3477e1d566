import CurlHTTP
import Cryptography
import Logging
import ServiceLifecycle
import Signing
import Synchronization

/// Fires payment and refund timers: expiries (`FOR UPDATE SKIP LOCKED`, so several sandboxes
/// could share a database), auto outcomes, fault reversals, late successes, refund outcomes.
struct TimerWorker: Service {
    let engine: SandboxEngine
    let pollMilliseconds: Int64

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await loop()
        }
    }

    private func loop() async {
        let logger = engine.logger
        while !Task.isCancelled {
            do {
                let now = engine.clock()
                let nextPayment = try await engine.store.nextPaymentTimer()
                let nextRefund = try await engine.store.nextRefundDue()
                var busy = false
                if let nextPayment, nextPayment <= now {
                    busy = try await engine.runDuePayments() >= 500 || busy
                }
                if let nextRefund, nextRefund <= now {
                    busy = try await engine.runDueRefunds() >= 200 || busy
                }
                if busy { continue }
                let due = [nextPayment, nextRefund, now + pollMilliseconds].compactMap { $0 }.filter { $0 > now }.min()
                    ?? now + pollMilliseconds
                await engine.timerSignal.wait(until: due, clock: engine.clock)
            } catch {
                logger.warning("timer worker failed; retrying", metadata: ["error": "\(error)"])
                await engine.timerSignal.wait(until: engine.clock() + 1000, clock: engine.clock)
            }
        }
    }
}

/// Delivers callbacks (§3): claims due events, signs each attempt afresh with the partner's
/// current key under the event's stable `webhook-id`, and records every attempt. Delivery ends
/// with HTTP 200 and a validly signed reply carrying `00` or `02`; otherwise the event is tried
/// again after the interval, up to its attempt limit.
struct CallbackDispatcher: Service {
    let engine: SandboxEngine
    let http: CurlHTTPClient
    let pollMilliseconds: Int64
    let maxInFlight: Int

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await loop()
        }
    }

    private func loop() async {
        let inFlight = InFlightCounter()
        let logger = engine.logger
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                do {
                    let capacity = maxInFlight - inFlight.value
                    var claimedAll = false
                    if capacity > 0 {
                        let batch = min(capacity, 64)
                        let settings = engine.settings
                        let now = engine.clock()
                        let claimed = try await engine.store.claimCallbacks(
                            now: now, limit: batch, leaseUntil: now + settings.callbackTimeoutMilliseconds + 5_000)
                        for callback in claimed {
                            inFlight.add(1)
                            group.addTask {
                                await deliver(callback, timeoutMilliseconds: settings.callbackTimeoutMilliseconds)
                                inFlight.add(-1)
                                engine.callbackSignal.signal()
                            }
                        }
                        claimedAll = claimed.count == batch
                    }
                    if claimedAll { continue }
                    let now = engine.clock()
                    var due = now + pollMilliseconds
                    if capacity > 0, let next = try await engine.store.nextCallbackDue() { due = min(due, max(next, now + 1)) }
                    await engine.callbackSignal.wait(until: due, clock: engine.clock)
                } catch {
                    logger.warning("callback dispatcher failed; retrying", metadata: ["error": "\(error)"])
                    await engine.callbackSignal.wait(until: engine.clock() + 1000, clock: engine.clock)
                }
            }
        }
    }

    /// One attempt of one callback, logged whatever happens.
    func deliver(_ callback: ClaimedCallback, timeoutMilliseconds: Int64) async {
        let attempt = callback.attemptsMade + 1
        let started = engine.clock()
        var record = CallbackAttempt(
            callbackID: callback.id, attempt: attempt, webhookTimestamp: 0, startedMilliseconds: started,
            latencyMilliseconds: 0, httpStatus: nil, resultCode: nil, outcome: "unknown_partner", tampered: false)
        var delivered = false
        if let partner = engine.partners[callback.partner] {
            let body = CallbackBody.body(prefix: callback.bodyPrefix, attempt: attempt)
            let headers = partner.signer.headers(for: body, id: callback.webhookID)
            let tampered = callback.tamperFirst && attempt == 1
            record.webhookTimestamp = headers.timestamp
            record.tampered = tampered
            var fields = HTTPHeaders()
            fields.add(name: "Content-Type", value: "application/json")
            fields.add(name: StandardWebhooks.idHeader, value: headers.id)
            fields.add(name: StandardWebhooks.timestampHeader, value: String(headers.timestamp))
            fields.add(name: StandardWebhooks.signatureHeader, value: tampered ? Self.corrupt(headers.signature) : headers.signature)
            fields.add(name: "x-partner-code", value: partner.code)
            let request = HTTPClientRequest(method: .post, url: callback.url, headers: fields, body: body)
            do {
                let response = try await http.execute(request, timeout: .milliseconds(timeoutMilliseconds))
                record.httpStatus = Int64(response.status)
                (delivered, record.resultCode, record.outcome) = Self.judge(response, partner: partner)
            } catch {
                record.outcome = error.phase == .timeout ? "timeout" : "transport_error:" + error.phase.code
            }
        }
        let finished = engine.clock()
        record.latencyMilliseconds = finished - started
        let state: NewCallback.State = delivered ? .delivered : (attempt >= callback.maxAttempts ? .failed : .pending)
        let next: Int64? = state == .pending ? max(started + callback.intervalMilliseconds, finished) : nil
        do {
            try await engine.store.recordAttempt(record, state: state, nextMilliseconds: next, now: finished)
        } catch {
            engine.logger.error("callback attempt not recorded; the lease will expire and it will be retried",
                                metadata: ["callback.id": "\(callback.id)", "error": "\(error)"])
        }
    }

    /// Delivered only on HTTP 200 with a valid signature (any of the partner's keys) and `MaLoi`
    /// `00` or `02`; the outcome names why not otherwise.
    static func judge(_ response: HTTPClientResponse, partner: PartnerKeys) -> (Bool, String?, String) {
        do {
            _ = try partner.verifier.verify(headers: { response.headers[$0] }, body: response.body)
        } catch {
            return (false, nil, error.isMissingHeader ? "unsigned_reply" : "bad_reply_signature:" + error.code)
        }
        guard let json = try? JSONValue.parse(response.body), case .string(let code)? = json["MaLoi"] else {
            return (false, nil, "unreadable_reply")
        }
        guard response.status == 200 else { return (false, code, "http_\(response.status)") }
        guard code == ResultCode.success.rawValue || code == ResultCode.alreadyConfirmed.rawValue else {
            return (false, code, "rejected")
        }
        return (true, code, "delivered")
    }

    /// A well-formed signature header whose MACs are wrong (first byte flipped), so the receiver
    /// must compute and compare rather than reject the form.
    static func corrupt(_ signature: String) -> String {
        signature.split(separator: " ").map { entry -> String in
            guard entry.hasPrefix("v1,"), var mac = Base64.decode(entry.dropFirst(3)), !mac.isEmpty else { return String(entry) }
            mac[0] ^= 0xFF
            return "v1," + Base64.encode(mac)
        }.joined(separator: " ")
    }
}

/// Callback attempts in flight, shared between the dispatcher loop and its delivery tasks.
final class InFlightCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .acquiring) }
    func add(_ delta: Int) { count.add(delta, ordering: .acquiringAndReleasing) }
}
