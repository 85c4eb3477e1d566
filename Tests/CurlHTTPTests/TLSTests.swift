import CurlHTTP
import Testing

/// TLS against a real peer (`openssl s_server`): verification on by default, a CA file, host
/// name checks, and mutual TLS with an encrypted client key.
extension CurlHTTPSuite {
@Suite struct TLSTests {
    private func withServer<T: Sendable>(
        requireClientCertificate: Bool = false,
        wrongName: Bool = false,
        _ body: (TestCertificates, Int) async throws -> T
    ) async throws -> T {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let server = try await TLSServer.start(
            certificate: wrongName ? certificates.wrongNameCertificate : certificates.serverCertificate,
            key: wrongName ? certificates.wrongNameKey : certificates.serverKey,
            logFile: certificates.directory + "/s_server.log",
            requireClientCertificateFrom: requireClientCertificate ? certificates.caFile : nil)
        do {
            let result = try await body(certificates, server.port)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    private func fetch(port: Int, host: String = "127.0.0.1", _ tls: CurlHTTPClient.TLS) async -> Result<HTTPClientResponse, HTTPClientError> {
        var configuration = CurlHTTPClient.Configuration()
        configuration.tls = tls
        configuration.timeout = .seconds(20)
        do {
            let client = try CurlHTTPClient(configuration: configuration, logger: testLogger())
            defer { Task { await client.shutdown() } }
            return .success(try await client.execute(HTTPClientRequest(url: "https://\(host):\(port)/")))
        } catch {
            return .failure(error)
        }
    }

    @Test func selfSignedServerIsRejectedByDefault() async throws {
        try await withServer { _, port in
            let result = await fetch(port: port, CurlHTTPClient.TLS())
            guard case .failure(let error) = result else { Issue.record("connected without trusting the CA"); return }
            #expect(error.phase == .tls)
            #expect(error.curlCode == 60)
            #expect(error.requestMayHaveBeenSent == false)
        }
    }

    @Test func trustedWithItsCAFile() async throws {
        try await withServer { certificates, port in
            var tls = CurlHTTPClient.TLS()
            tls.caFile = certificates.caFile
            let response = try await fetch(port: port, tls).get()
            #expect(response.status == 200)
            #expect(!String(decoding: response.body, as: UTF8.self).contains("Client certificate"))
            let byName = try await fetch(port: port, host: "localhost", tls).get()
            #expect(byName.status == 200)
        }
    }

    @Test func certificateForAnotherNameIsRejected() async throws {
        try await withServer(wrongName: true) { certificates, port in
            var tls = CurlHTTPClient.TLS()
            tls.caFile = certificates.caFile
            guard case .failure(let error) = await fetch(port: port, tls) else { Issue.record("accepted a certificate for another name"); return }
            #expect(error.phase == .tls)
        }
    }

    @Test func verificationCanBeTurnedOffExplicitly() async throws {
        try await withServer(wrongName: true) { _, port in
            var tls = CurlHTTPClient.TLS()
            tls.verifyPeer = false
            tls.verifyHost = false
            let response = try await fetch(port: port, tls).get()
            #expect(response.status == 200)
        }
    }

    @Test func mutualTLS() async throws {
        try await withServer(requireClientCertificate: true) { certificates, port in
            var anonymous = CurlHTTPClient.TLS()
            anonymous.caFile = certificates.caFile
            guard case .failure(let refused) = await fetch(port: port, anonymous) else {
                Issue.record("a server requiring a client certificate answered without one")
                return
            }
            #expect(refused.phase == .tls)

            var wrongPassword = anonymous
            wrongPassword.clientCertificate = .init(
                certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey, privateKeyPassword: "wrong")
            guard case .failure(let badKey) = await fetch(port: port, wrongPassword) else {
                Issue.record("an encrypted key was used with the wrong password")
                return
            }
            #expect(badKey.phase == .tls)

            var mutual = anonymous
            mutual.clientCertificate = .init(
                certificateFile: certificates.clientCertificate, privateKeyFile: certificates.clientKey,
                privateKeyPassword: TestCertificates.clientKeyPassword)
            let response = try await fetch(port: port, mutual).get()
            #expect(response.status == 200)
            let page = String(decoding: response.body, as: UTF8.self)
            #expect(page.contains("Client certificate"))
            #expect(page.contains("feerecon-client"))
        }
    }
}
}
