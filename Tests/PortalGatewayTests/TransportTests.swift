import CurlHTTP
import FeeReconCore
import Foundation
import PortalGateway
import TestSupport
import Testing

/// A gateway that does not answer in time, and one that cannot be reached: errors that say the
/// outcome is unknown (timeout) or that nothing was sent (unreachable), for every endpoint.
@Suite(.timeLimit(.minutes(3))) struct TransportTests {
    static func adapter(port: Int, http: CurlHTTPClient, timeout: Duration) -> PortalGatewayClient {
        PortalGatewayClient(
            configuration: PortalConfiguration(
                baseURL: "http://127.0.0.1:\(port)/ppdvcqg/v1", partners: [SandboxPeer.partner: [Keys.partner]],
                requestTimeout: timeout, settlementTimeout: timeout),
            http: http, logger: .test("adapter"))
    }

    /// Every operation of the adapter, each returning the kind of error it threw.
    static func everyOperation(_ gateway: PortalGatewayClient) async -> [String: GatewayError.Kind?] {
        let request = Requests.payment()
        return [
            "create": await GatewayError.kind {
                try await gateway.create(encoded: try gateway.encodeCreate(request), partner: request.partner)
            },
            "query": await GatewayError.kind { try await gateway.query(reference: request.reference, partner: request.partner) },
            "refund": await GatewayError.kind {
                try await gateway.refund(Requests.refund(of: request.reference, transaction: "PG1", amount: 1_000))
            },
            "settlement": await GatewayError.kind {
                try await gateway.fetchSettlement(day: CivilDate(year: 2026, month: 1, day: 15)!, partner: request.partner) { _ in }
            },
        ]
    }

    /// The server accepts the connection and never answers: a timeout after the configured time.
    @Test func silentGatewayTimesOut() async throws {
        let silent = try SilentServer()
        defer { silent.close() }
        let http = try CurlHTTPClient()
        let gateway = Self.adapter(port: silent.port, http: http, timeout: .seconds(1))
        let clock = ContinuousClock()
        let started = clock.now
        let kinds = await Self.everyOperation(gateway)
        let elapsed = clock.now - started
        await http.shutdown()
        #expect(kinds == ["create": .timeout, "query": .timeout, "refund": .timeout, "settlement": .timeout])
        // Four operations one after another, each waiting its one second and not much longer.
        #expect(elapsed >= .seconds(4))
        #expect(elapsed < .seconds(40))
    }

    /// Nothing listens on the port: the connection is refused, nothing was sent.
    @Test func refusedPortIsUnreachable() async throws {
        let port = try freeLoopbackPort()
        let http = try CurlHTTPClient()
        let kinds = await Self.everyOperation(Self.adapter(port: port, http: http, timeout: .seconds(5)))
        await http.shutdown()
        #expect(kinds == ["create": .unreachable, "query": .unreachable, "refund": .unreachable, "settlement": .unreachable])
    }

    /// A partner the adapter has no secret for: refused before anything is sent.
    @Test func partnerWithoutSecretIsAnInvalidRequest() async throws {
        let port = try freeLoopbackPort()
        let http = try CurlHTTPClient()
        let gateway = Self.adapter(port: port, http: http, timeout: .seconds(5))
        let other = PartnerCode(rawValue: "HNI")!
        #expect(await GatewayError.kind { try await gateway.query(reference: Requests.reference(), partner: other) } == .invalidRequest)
        await http.shutdown()
    }
}
