import Cryptography
import CurlHTTP
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

private func makeClient(_ adjust: (inout CurlHTTPClient.Configuration) -> Void = { _ in }) throws -> CurlHTTPClient {
    var configuration = CurlHTTPClient.Configuration()
    configuration.connectTimeout = .seconds(5)
    configuration.timeout = .seconds(20)
    adjust(&configuration)
    return try CurlHTTPClient(configuration: configuration, logger: testLogger())
}

/// Runs `body` with a fresh client and always shuts it down.
private func withClient<T: Sendable>(
    _ adjust: (inout CurlHTTPClient.Configuration) -> Void = { _ in },
    _ body: (CurlHTTPClient) async throws -> T
) async throws -> T {
    let client = try makeClient(adjust)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

/// Awaits `operation` and returns the `HTTPClientError` it throws, or fails the test.
private func expectHTTPError(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ operation: () async throws -> HTTPClientResponse
) async -> HTTPClientError? {
    do {
        let response = try await operation()
        Issue.record("expected an error, got \(response)", sourceLocation: sourceLocation)
        return nil
    } catch let error as HTTPClientError {
        return error
    } catch {
        Issue.record("expected an HTTPClientError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The phase of the `HTTPClientError` a finished task failed with, if it did.
private func failurePhase(_ result: Result<HTTPClientResponse, any Error>) -> HTTPClientError.Phase? {
    guard case .failure(let error) = result else { return nil }
    return (error as? HTTPClientError)?.phase
}

extension CurlHTTPSuite {
@Suite struct ClientTests {
    @Test func getReturnsStatusHeadersAndBody() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/1000"))
                #expect(response.status == 200)
                #expect(response.body == pattern(1000))
                #expect(response.headers["content-length"] == "1000")
                #expect(response.headers["Content-Length"] == "1000")
            }
        }
    }

    @Test func nonSuccessStatusIsAResponseNotAnError() async throws {
        try await withTestServer { port in
            try await withClient { client in
                for status in [204, 401, 404, 409, 413, 500, 503] {
                    let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/status/\(status)"))
                    #expect(response.status == status)
                }
            }
        }
    }

    @Test func twoHundredConcurrentRequests() async throws {
        try await withTestServer { port in
            try await withClient { client in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for i in 0..<200 {
                        group.addTask {
                            let body = Array("request \(i) ".utf8) + pattern(i * 37, seed: UInt8(i & 0xFF))
                            var request = HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", body: body)
                            request.headers.add(name: "Content-Type", value: "application/json")
                            let response = try await client.execute(request)
                            return response.status == 200 && response.body == body
                        }
                    }
                    var succeeded = 0
                    for try await ok in group where ok { succeeded += 1 }
                    #expect(succeeded == 200)
                }
            }
        }
    }

    @Test func connectionsAreReused() async throws {
        let record = ServerRecord()
        try await withTestServer(record: record) { port in
            try await withClient({ $0.maxConnectionsPerHost = 8 }) { client in
                for round in 0..<5 {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for i in 0..<40 {
                            group.addTask {
                                let body = Array("\(round)-\(i)".utf8)
                                let response = try await client.execute(
                                    HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", body: body))
                                #expect(response.body == body)
                            }
                        }
                        try await group.waitForAll()
                    }
                }
            }
        }
        #expect(record.connectionCount >= 1)
        #expect(record.connectionCount <= 8)
    }

    @Test func largeBodiesRoundTripIntact() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let size = 5 * 1024 * 1024
                let download = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/\(size)"))
                #expect(download.body.count == size)
                let expected = SHA256.hash(pattern(size))
                #expect(SHA256.hash(download.body) == expected)

                let upload = SecureRandom.bytes(size)
                let echoed = try await client.execute(HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", body: upload))
                #expect(echoed.status == 200)
                #expect(echoed.body.count == size)
                #expect(SHA256.hash(echoed.body) == SHA256.hash(upload))

                let chunked = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/chunked/\(size)"))
                #expect(chunked.headers["content-length"] == nil)
                #expect(SHA256.hash(chunked.body) == expected)
            }
        }
    }

    @Test func responseOverTheLimitIsAnError() async throws {
        try await withTestServer { port in
            try await withClient({ $0.maxResponseBodySize = 1024 * 1024 }) { client in
                let exact = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/\(1024 * 1024)"))
                #expect(exact.body.count == 1024 * 1024)
                for path in ["bytes", "chunked"] {
                    let error = await expectHTTPError {
                        try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(path)/\(1024 * 1024 + 1)"))
                    }
                    #expect(error?.phase == .responseTooLarge, "\(path)")
                }
                let after = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/10"))
                #expect(after.body == pattern(10))
            }
        }
    }

    @Test func headersRoundTrip() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/headers", headers: [
                    "X-Test-Id": "msg_2Qx9",
                    "x-test-signature": "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA= v1,AAAA",
                    "X-Test-Unicode": "Sở Tư pháp",
                    "X-Test-Empty": "",
                    "User-Agent": "feerecon-tests/1",
                ])
                let response = try await client.execute(request)
                #expect(response.status == 200)
                #expect(response.headers["x-test-id"] == "msg_2Qx9")
                #expect(response.headers["X-TEST-SIGNATURE"] == "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA= v1,AAAA")
                #expect(response.headers["x-test-unicode"] == "Sở Tư pháp")
                #expect(response.headers["x-test-empty"] == "")
                #expect(response.headers.values(for: "x-multi") == ["one", "two"])
                #expect(response.headers["x-colon"] == "a: b:c")
                let seen = String(decoding: response.body, as: UTF8.self).split(separator: "\n")
                #expect(seen.contains("user-agent=feerecon-tests/1"))
                #expect(!seen.contains { $0.hasPrefix("expect=") })
                #expect(!seen.contains { $0.hasPrefix("proxy-") })
            }
        }
    }

    @Test func defaultUserAgentAndNoCurlContentType() async throws {
        try await withTestServer { port in
            try await withClient({ $0.userAgent = "FeeRecon/test" }) { client in
                let seen = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/headers"))
                #expect(String(decoding: seen.body, as: UTF8.self).split(separator: "\n").contains("user-agent=FeeRecon/test"))
                let echoed = try await client.execute(HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", body: [1, 2]))
                #expect(echoed.headers["content-type"] == "application/octet-stream")
            }
        }
    }

    @Test func methodsAndEmptyBodies() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let put = try await client.execute(HTTPClientRequest(method: .put, url: "http://127.0.0.1:\(port)/echo", body: [7, 8, 9]))
                #expect(put.status == 201 && put.body == [7, 8, 9])
                let emptyPost = try await client.execute(HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo"))
                #expect(emptyPost.status == 200 && emptyPost.body.isEmpty)
                #expect(emptyPost.headers["x-method"] == "POST")
                let delete = try await client.execute(HTTPClientRequest(method: .delete, url: "http://127.0.0.1:\(port)/echo"))
                #expect(delete.status == 200 && delete.headers["x-body-length"] == "0")
                let head = try await client.execute(HTTPClientRequest(method: .head, url: "http://127.0.0.1:\(port)/bytes/500"))
                #expect(head.status == 200 && head.body.isEmpty)
            }
        }
    }

    @Test func redirectsAreNotFollowedByDefault() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/status/302"))
                #expect(response.status == 302)
            }
        }
    }

    @Test func serverThatNeverAnswersTimesOutOnTime() async throws {
        let silent = try RawSocket(listenBacklog: 16)
        try await withClient { client in
            let timeout = Duration.seconds(3)
            let clock = ContinuousClock()
            let start = clock.now
            let error = await expectHTTPError {
                try await client.execute(
                    HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(silent.port)/never", body: [1]), timeout: timeout)
            }
            let elapsed = clock.now - start
            #expect(error?.phase == .timeout)
            #expect(error?.requestMayHaveBeenSent == true)
            #expect(elapsed >= timeout)
            // The request's 3 s timeout ended it, not the client's 30 s default. curl's timer is
            // honoured by `curl_multi_poll`, so lateness here is only a loaded machine's scheduling;
            // the margin says which timeout fired, not how fast.
            #expect(elapsed < .seconds(10))
        }
    }

    @Test func connectTimeoutIsDistinguished() async throws {
        // A listen queue of one, already taken: the kernel drops further handshakes.
        let full = try RawSocket(listenBacklog: 0)
        let filler = try full.connectClient()
        defer { close(filler) }
        try await withClient({ $0.connectTimeout = .seconds(1) }) { client in
            let clock = ContinuousClock()
            let start = clock.now
            let error = await expectHTTPError {
                try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(full.port)/"), timeout: .seconds(10))
            }
            let elapsed = clock.now - start
            #expect(error?.phase == .connectTimeout)
            #expect(error?.requestMayHaveBeenSent == false)
            #expect(elapsed >= .seconds(1))
            // The connect timeout (1 s) ended it, not the total one (10 s); the margin is for a
            // loaded machine, not a measure of speed.
            #expect(elapsed < .seconds(5))
        }
    }

    @Test func refusedPortFailsFastWithConnectError() async throws {
        let closed = try RawSocket(listenBacklog: nil)
        try await withClient { client in
            let clock = ContinuousClock()
            let start = clock.now
            let error = await expectHTTPError {
                try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(closed.port)/x?secret=query"))
            }
            // A refusal is reported at once, not after the 10 s connect timeout; the margin is
            // for a loaded machine, not a measure of speed.
            #expect(clock.now - start < .seconds(5))
            #expect(error?.phase == .connect)
            #expect(error?.curlCode == 7)
            #expect(error?.host == "127.0.0.1:\(closed.port)")
            let description = error.map(String.init(describing:)) ?? ""
            #expect(description.contains("connect"))
            #expect(description.contains("127.0.0.1:\(closed.port)"))
            #expect(!description.contains("secret"))
            #expect(!description.contains("/x"))
        }
    }

    @Test func unresolvableHostIsADNSError() async throws {
        try await withClient { client in
            let error = await expectHTTPError {
                try await client.execute(HTTPClientRequest(url: "http://does-not-exist.invalid/"))
            }
            #expect(error?.phase == .dnsResolution)
        }
    }

    @Test(arguments: [
        HTTPClientRequest(url: "ftp://127.0.0.1/file"),
        HTTPClientRequest(url: "file:///etc/passwd"),
        HTTPClientRequest(url: "not a url"),
        HTTPClientRequest(url: "http://127.0.0.1/", headers: ["X-Injected": "a\r\nEvil: yes"]),
        HTTPClientRequest(url: "http://127.0.0.1/", headers: ["Bad Name": "v"]),
        HTTPClientRequest(method: HTTPMethod(rawValue: "GET /x"), url: "http://127.0.0.1/"),
    ])
    func invalidRequestsAreRejectedBeforeSending(request: HTTPClientRequest) async throws {
        try await withClient { client in
            let error = await expectHTTPError { try await client.execute(request) }
            #expect(error?.phase == .invalidRequest)
        }
    }

    @Test func cancellationAbortsTheTransfer() async throws {
        let silent = try RawSocket(listenBacklog: 16)
        try await withClient { client in
            let clock = ContinuousClock()
            let start = clock.now
            let task = Task {
                try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(silent.port)/slow"), timeout: .seconds(30))
            }
            let connection = try await silent.accept(within: .seconds(10))
            defer { close(connection) }
            task.cancel()
            let result = await task.result
            #expect(throws: HTTPClientError.self) { try result.get() }
            #expect(failurePhase(result) == .cancelled)
            #expect(clock.now - start < .seconds(10))
            #expect(await waitForPeerClose(connection, within: .seconds(10)))
        }
    }

    @Test func cancelledBeforeStartingNeverSends() async throws {
        let silent = try RawSocket(listenBacklog: 16)
        try await withClient { client in
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(silent.port)/"))
            }
            let result = await task.result
            #expect(failurePhase(result) == .cancelled)
        }
    }

    @Test func clientStillWorksAfterCancellations() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let silent = try RawSocket(listenBacklog: 64)
                let tasks = (0..<20).map { _ in
                    Task { try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(silent.port)/"), timeout: .seconds(30)) }
                }
                for task in tasks { task.cancel() }
                for task in tasks {
                    #expect(failurePhase(await task.result) == .cancelled)
                }
                let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/3"))
                #expect(response.body == pattern(3))
            }
        }
    }

    @Test func shutdownFailsRequestsInFlightAndAfterwards() async throws {
        let silent = try RawSocket(listenBacklog: 16)
        let client = try makeClient()
        let inFlight = Task { try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(silent.port)/"), timeout: .seconds(30)) }
        let connection = try await silent.accept(within: .seconds(10))
        defer { close(connection) }
        await client.shutdown()
        #expect(failurePhase(await inFlight.result) == .shutdown)
        let error = await expectHTTPError { try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(silent.port)/")) }
        #expect(error?.phase == .shutdown)
        await client.shutdown()
    }

    @Test func releasedClientShutsItselfDown() async throws {
        try await withTestServer { port in
            for _ in 0..<20 {
                let client = try makeClient()
                let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/1"))
                #expect(response.status == 200)
            }
        }
    }

    @Test func descriptionsLeakNothing() {
        let request = HTTPClientRequest(method: .post, url: "http://127.0.0.1/x?token=abc", headers: ["Authorization": "Bearer s3cret"], body: Array("secret body".utf8))
        let text = "\(request) \(request.headers)"
        #expect(!text.contains("abc"))
        #expect(!text.contains("s3cret"))
        #expect(!text.contains("secret body"))
        #expect(text.contains("Authorization"))
        let certificate = CurlHTTPClient.ClientCertificate(certificateFile: "/c.pem", privateKeyFile: "/k.pem", privateKeyPassword: "pw-s3cret")
        var configuration = CurlHTTPClient.Configuration()
        configuration.tls.clientCertificate = certificate
        configuration.proxy = .init(url: "http://user:proxy-s3cret@127.0.0.1:3128")
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in ["\(certificate)", String(reflecting: certificate), "\(configuration)", String(reflecting: configuration), dumped] {
            #expect(!text.contains("pw-s3cret"))
            #expect(!text.contains("proxy-s3cret"))
        }
    }

    /// Small POSTs at 64 in flight; prints the rate so a run shows it, asserts only correctness.
    @Test func sustainedSmallPosts() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let total = 3000
                let concurrency = 64
                let body = Array(#"{"LoaiBanTin":"TRACUU","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z"}"#.utf8)
                let request = HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", headers: ["Content-Type": "application/json"], body: body)
                let clock = ContinuousClock()
                let start = clock.now
                let succeeded = try await withThrowingTaskGroup(of: Int.self) { group in
                    for worker in 0..<concurrency {
                        group.addTask {
                            var ok = 0
                            for _ in stride(from: worker, to: total, by: concurrency) {
                                let response = try await client.execute(request)
                                if response.status == 200, response.body == body { ok += 1 }
                            }
                            return ok
                        }
                    }
                    return try await group.reduce(0, +)
                }
                let elapsed = clock.now - start
                #expect(succeeded == total)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print("CurlHTTP: \(total) small POSTs at \(concurrency) concurrent in \(elapsed): \(Int(Double(total) / seconds)) requests/s")
            }
        }
    }
}
}

extension CurlHTTPSuite.ClientTests {
    @Test func shutsDownWithItsServiceGroup() async throws {
        let client = try makeClient()
        let group = ServiceGroup(configuration: .init(services: [client], logger: testLogger()))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let error = await expectHTTPError { try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:1/")) }
        #expect(error?.phase == .shutdown)
    }
}

extension CurlHTTPSuite.ClientTests {
    @Test func usableThroughTheTransportProtocol() async throws {
        try await withTestServer { port in
            try await withClient { client in
                let transport: any HTTPTransport = client
                let response = try await transport.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/5"))
                #expect(response.body == pattern(5))
                let timed = try await transport.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/6"), timeout: .seconds(5))
                #expect(timed.body == pattern(6))
            }
        }
    }
}
