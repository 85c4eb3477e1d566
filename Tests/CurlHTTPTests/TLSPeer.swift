import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made with the `openssl` CLI in a fresh temporary directory: a CA, a server
/// certificate for 127.0.0.1/localhost, one for another name, and a client certificate whose
/// key is encrypted with `clientKeyPassword`.
struct TestCertificates: Sendable {
    let directory: String
    static let clientKeyPassword = "test-only-passphrase"

    var caFile: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var wrongNameCertificate: String { directory + "/other.pem" }
    var wrongNameKey: String { directory + "/other.key" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }

    static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curlhttp-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let certificates = TestCertificates(directory: directory)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        try await openssl(["req", "-x509"] + ec + ["-nodes", "-keyout", directory + "/ca.key", "-out", certificates.caFile,
                                                   "-days", "2", "-subj", "/CN=FeeRecon Test CA"])
        try await certificates.issue(name: "server", subject: "/CN=localhost", altNames: "IP:127.0.0.1,DNS:localhost", keyOptions: ["-nodes"])
        try await certificates.issue(name: "other", subject: "/CN=other.test", altNames: "DNS:other.test", keyOptions: ["-nodes"])
        try await certificates.issue(name: "client", subject: "/CN=feerecon-client", altNames: nil,
                                     keyOptions: ["-passout", "pass:" + clientKeyPassword])
        return certificates
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func issue(name: String, subject: String, altNames: String?, keyOptions: [String]) async throws {
        let base = directory + "/" + name
        try await Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] + keyOptions
            + ["-keyout", base + ".key", "-out", base + ".csr", "-subj", subject])
        var sign = ["x509", "-req", "-in", base + ".csr", "-CA", caFile, "-CAkey", directory + "/ca.key",
                    "-CAcreateserial", "-out", base + ".pem", "-days", "2"]
        if let altNames {
            try "subjectAltName=\(altNames)\n".write(toFile: base + ".ext", atomically: true, encoding: .utf8)
            sign += ["-extfile", base + ".ext"]
        }
        try await Self.openssl(sign)
    }

    /// Runs the openssl CLI to completion, killing it if it takes longer than `timeout`.
    static func openssl(_ arguments: [String], timeout: Duration = .seconds(30)) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let status = try await runToCompletion(process, timeout: timeout)
        guard status == 0 else { throw TestFailure("openssl \(arguments.first ?? "") exited with \(status)") }
    }
}

/// Runs `process` and returns its exit status; a watchdog terminates it after `timeout`.
func runToCompletion(_ process: Process, timeout: Duration) async throws -> Int32 {
    let (exits, exited) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = { exited.yield($0.terminationStatus); exited.finish() }
    try process.run()
    return try await withThrowingTaskGroup(of: Int32?.self) { group in
        group.addTask {
            var iterator = exits.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure("process did not finish within \(timeout)")
        }
        defer { group.cancelAll() }
        guard let status = try await group.next() ?? nil else { throw TestFailure("process vanished") }
        return status
    }
}

/// `openssl s_server -www` on 127.0.0.1 and an ephemeral port: a real TLS peer that answers
/// every GET with a status page (which lists the client certificate when one was presented).
final class TLSServer: Sendable {
    let port: Int
    private let process: Process

    private static let pollInterval = Duration.milliseconds(5)

    private init(port: Int, process: Process) {
        self.port = port
        self.process = process
    }

    /// Starts the server with its output in `logFile` (a file, so it can never fill and block).
    static func start(
        certificate: String, key: String, logFile: String, requireClientCertificateFrom clientCA: String? = nil
    ) async throws -> TLSServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        var arguments = ["s_server", "-accept", "127.0.0.1:0", "-www", "-cert", certificate, "-key", key]
        if let clientCA { arguments += ["-Verify", "1", "-CAfile", clientCA] }
        process.arguments = arguments
        guard FileManager.default.createFile(atPath: logFile, contents: nil), let log = FileHandle(forWritingAtPath: logFile) else {
            throw TestFailure("cannot create the s_server log")
        }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = Pipe()
        try process.run()
        do {
            let port = try await readPort(from: logFile, process: process, within: .seconds(20))
            return TLSServer(port: port, process: process)
        } catch {
            kill(process.processIdentifier, SIGKILL)
            throw error
        }
    }

    /// s_server prints `ACCEPT 127.0.0.1:<port>` once it listens; poll its log for it to a deadline.
    private static func readPort(from logFile: String, process: Process, within timeout: Duration) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("ACCEPT ") {
                if let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                    return port
                }
            }
            guard process.isRunning else { throw TestFailure("s_server exited before listening") }
            try await Task.sleep(for: pollInterval)
        }
        throw TestFailure("s_server did not start listening in time")
    }

    func stop() async {
        guard process.isRunning else { return }
        // SIGKILL: the test runner may hand its children an ignored SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: Self.pollInterval)
        }
    }
}
