import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import TestSupport

/// A loopback HTTP server standing in for the one-stop system: records every request and
/// answers with the status the test sets.
final class Receiver: Sendable {
    struct Received: Sendable {
        var headers: [String: String]
        var body: [UInt8]
    }

    let received = Locked<[Received]>([])
    let status = Locked<Int>(200)
    private let port = Locked<Int?>(nil)
    private let group = Locked<ServiceGroup?>(nil)
    private let task = Locked<Task<Void, any Error>?>(nil)

    var url: String { "http://127.0.0.1:\(port.value ?? 0)/hook" }

    func start() async throws {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            self.received.withLock { $0.append(Received(headers: headers, body: Array(body.readableBytesView))) }
            return Response(status: HTTPResponse.Status(code: self.status.value))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in self.port.withLock { $0 = channel.localAddress?.port } },
            logger: Logger.test("receiver"))
        let group = ServiceGroup(configuration: .init(services: [app], logger: Logger.test("receiver")))
        self.group.withLock { $0 = group }
        task.withLock { $0 = Task { try await group.run() } }
        try await poll(until: { self.port.value != nil }, deadline: .seconds(20), "receiver listening")
    }

    func stop() async {
        await group.value?.triggerGracefulShutdown()
        _ = try? await task.value?.value
    }
}
