import CurlHTTP
import FeeReconCore
import FeeReconServer
import Foundation
import GatewaySandbox
import Hummingbird
import Logging
import PortalGateway
import Postgres
import Signing
import TestSupport
import Testing

/// The gateway sandbox running on its own fresh database, for end-to-end tests of the service.
struct RunningSandbox: Sendable {
    let baseURL: String
    let http: CurlHTTPClient

    var apiURL: String { baseURL + "/ppdvcqg/v1" }

    func control(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> HTTPClientResponse {
        var headers = HTTPHeaders()
        if json != nil { headers.add(name: "content-type", value: "application/json") }
        return try await http.execute(
            HTTPClientRequest(method: method, url: baseURL + "/sandbox" + path, headers: headers, body: Array((json ?? "").utf8)),
            timeout: .seconds(30))
    }

    func controlJSON(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> Any {
        let response = try await control(method, path, json: json)
        guard (200..<300).contains(response.status) else {
            throw TestSupportError("sandbox control \(path) answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: Data(response.body))
    }
}

/// Runs the sandbox and the service wired to it (the service's callbacks URL is given to the
/// sandbox in every create request) for the duration of `body`.
func withSandboxAndService<Result: Sendable>(
    sandbox configureSandbox: @Sendable (inout SandboxSettings) -> Void = { _ in },
    settings adjust: @Sendable (inout AppSettings) -> Void = { _ in },
    gatewayTimeout: Duration = .seconds(10),
    _ body: (RunningSandbox, RunningService) async throws -> Result
) async throws -> Result {
    let secret = WebhookSecret.generate()
    var sandboxSettings = SandboxSettings()
    sandboxSettings.settlementWindow = false
    sandboxSettings.callbackIntervalMilliseconds = 500
    sandboxSettings.callbackTimeoutMilliseconds = 5_000
    configureSandbox(&sandboxSettings)
    let finalSettings = sandboxSettings
    return try await withTestDatabase(maximumConnections: 8) { sandboxDatabase in
        var configuration = SandboxConfiguration(
            database: sandboxDatabase.configuration, partners: [SandboxPartner(code: "BTH", secrets: [secret])])
        configuration.port = 0
        configuration.settings = finalSettings
        configuration.workerPollMilliseconds = 50
        var logger = Logger.test("sandbox")
        logger.logLevel = ProcessInfo.processInfo.environment["FEERECON_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        configuration.logger = logger
        let bound = Locked<Int?>(nil)
        let app = try await buildSandboxApplication(configuration: configuration) { port in bound.withLock { $0 = port } }
        let task = Task { try await app.run() }
        do {
            try await poll(until: { bound.value != nil }, deadline: .seconds(30), "sandbox listening")
            let http = try CurlHTTPClient()
            let sandbox = RunningSandbox(baseURL: "http://127.0.0.1:\(bound.value!)", http: http)
            let apiURL = sandbox.apiURL
            let result = try await withRunningService(
                gateway: { client, partners in
                    PortalGatewayClient(
                        configuration: PortalConfiguration(baseURL: apiURL, partners: partners, requestTimeout: gatewayTimeout),
                        http: client, logger: Logger.test("gateway"))
                },
                settings: adjust, secret: secret
            ) { service in
                try await body(sandbox, service)
            }
            await http.shutdown()
            task.cancel()
            _ = try? await task.value
            return result
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
    }
}
