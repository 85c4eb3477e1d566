import Cryptography
import CurlHTTP
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

private typealias HTTPField = HTTPFields.Element

/// Every CurlHTTP test, one at a time: several assert timings, which a concurrent load test on
/// two cores would distort.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CurlHTTPSuite {}

/// A request context that remembers the client's port, so tests can count connections.
struct PeerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let peerPort: Int?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerPort = source.channel.remoteAddress?.port
    }
}

/// What the loopback test server saw, shared with the test.
final class ServerRecord: Sendable {
    private let ports = Mutex<Set<Int>>([])

    func sawConnection(from port: Int?) {
        guard let port else { return }
        _ = ports.withLock { $0.insert(port) }
    }

    var connectionCount: Int { ports.withLock { $0.count } }
}

/// Deterministic bytes, so a body can be checked without keeping a copy.
func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8 &+ Int(seed)) }
        initialized = count
    }
}

func testLogger() -> Logger {
    var logger = Logger(label: "curl-http-tests")
    logger.logLevel = .critical
    return logger
}

/// Runs `body` with the port of a Hummingbird server on 127.0.0.1 that has the test routes, and
/// stops the server afterwards.
func withTestServer<T: Sendable>(
    record: ServerRecord = ServerRecord(),
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    let router = Router(context: PeerContext.self)
    router.post("/echo") { request, context -> Response in
        record.sawConnection(from: context.peerPort)
        let bytes = try await request.body.collect(upTo: 16 * 1024 * 1024)
        var headers = HTTPFields()
        headers[.contentType] = request.headers[.contentType] ?? "application/octet-stream"
        if let method = HTTPField.Name("x-method") { headers[method] = request.method.rawValue }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: bytes))
    }
    router.put("/echo") { request, _ -> Response in
        let bytes = try await request.body.collect(upTo: 16 * 1024 * 1024)
        return Response(status: .created, body: .init(byteBuffer: bytes))
    }
    router.delete("/echo") { request, _ -> Response in
        let bytes = try await request.body.collect(upTo: 1024)
        var headers = HTTPFields()
        headers[HTTPField.Name("x-body-length")!] = String(bytes.readableBytes)
        return Response(status: .ok, headers: headers)
    }
    router.get("/bytes/:count") { _, context -> Response in
        let count = try context.parameters.require("count", as: Int.self)
        return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: pattern(count))))
    }
    router.head("/bytes/:count") { _, context -> Response in
        let count = try context.parameters.require("count", as: Int.self)
        var headers = HTTPFields()
        headers[.contentLength] = String(count)
        return Response(status: .ok, headers: headers)
    }
    router.get("/chunked/:count") { _, context -> Response in
        let count = try context.parameters.require("count", as: Int.self)
        let bytes = pattern(count)
        return Response(status: .ok, body: ResponseBody { writer in
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + 65_536, bytes.count)
                try await writer.write(ByteBuffer(bytes: bytes[offset..<end]))
                offset = end
            }
            try await writer.finish(nil)
        })
    }
    router.get("/headers") { request, _ -> Response in
        var headers = HTTPFields()
        for field in request.headers where field.name.canonicalName.hasPrefix("x-test-") {
            headers.append(HTTPField(name: field.name, value: field.value))
        }
        headers.append(HTTPField(name: HTTPField.Name("X-Multi")!, value: "one"))
        headers.append(HTTPField(name: HTTPField.Name("X-Multi")!, value: "two"))
        headers.append(HTTPField(name: HTTPField.Name("X-Colon")!, value: "a: b:c"))
        let seen = request.headers.map { "\($0.name.canonicalName)=\($0.value)" }.joined(separator: "\n")
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: seen)))
    }
    router.get("/status/:code") { _, context -> Response in
        let code = try context.parameters.require("code", as: Int.self)
        return Response(status: .init(code: code))
    }

    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
        onServerRunning: { channel in
            if let port = channel.localAddress?.port { portContinuation.yield(port) }
            portContinuation.finish()
        },
        logger: testLogger())
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { portContinuation.finish() }
            try await app.run()
        }
        defer { group.cancelAll() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the test server did not start") }
        return try await body(port)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
