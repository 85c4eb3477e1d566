import Foundation
import Postgres

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster in a temporary directory, for tests that stop and restart the
/// server: restarting the shared cluster of `scripts/test` would break tests running in parallel.
/// Built from `FEERECON_TEST_PG_BIN`; runs as the `postgres` OS user when the tests run as root.
public final class TestCluster: Sendable {
    public let directory: URL
    public let port: Int
    private let binaries: String

    /// The superuser URL of the cluster's `postgres` database.
    public var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    /// Creates and starts a cluster (initdb, then pg_ctl start) on a free loopback port.
    public static func start() async throws -> TestCluster {
        let binaries = try TestEnvironment.postgresBinaries()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("feerecon-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        if getuid() == 0 {
            try await run("/bin/chown", ["postgres", directory.path])
        }
        let initial = TestCluster(directory: directory, port: try freeLoopbackPort(), binaries: binaries)
        try await initial.pg(
            "initdb", ["-D", initial.dataDirectory, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                       "--locale=C.UTF-8", "--no-sync"])
        // The free port is found by binding and closing, so a process starting at the same moment
        // may take it first; then the server cannot bind and another port is tried (three in all).
        var cluster = initial
        for attempt in 1...3 {
            do {
                try await cluster.startServer()
                return cluster
            } catch {
                guard attempt < 3, cluster.serverLog.contains("could not bind") || cluster.serverLog.contains("already in use") else {
                    throw TestSupportError("\(error)\n--- server.log ---\n\(cluster.serverLog.suffix(2000))")
                }
                cluster = TestCluster(directory: directory, port: try freeLoopbackPort(), binaries: binaries)
            }
        }
        return cluster
    }

    /// The server's log so far (empty if there is none).
    private var serverLog: String {
        (try? String(contentsOfFile: directory.appendingPathComponent("server.log").path, encoding: .utf8)) ?? ""
    }

    private init(directory: URL, port: Int, binaries: String) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
    }

    private var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// Stops the server (`-m fast`: sessions are terminated) and starts it again on the same port.
    public func restart() async throws {
        try await stopServer()
        try await startServer()
    }

    /// Stops the server and deletes the cluster.
    public func destroy() async throws {
        try await stopServer()
        try FileManager.default.removeItem(at: directory)
    }

    public func startServer() async throws {
        try await pg(
            "pg_ctl",
            ["-D", dataDirectory, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "30",
             "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    }

    public func stopServer() async throws {
        try await pg("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"])
    }

    private func pg(_ tool: String, _ arguments: [String]) async throws {
        let path = binaries + "/" + tool
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] : [path]
        // `pg_ctl start` leaves the server running in the background with every descriptor it
        // inherited; one of them tells Foundation when the child is gone, so close them first.
        let closeInherited = #"for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null; exec "$@""#
        try await Self.run("/bin/bash", ["-c", closeInherited, "bash"] + command + arguments)
    }

    /// Runs a program to completion (at most 60 s) and throws with its output if it fails.
    static func run(_ executable: String, _ arguments: [String]) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // Output goes to a file, not a pipe, so nothing blocks a cooperative thread reading it.
        let log = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("feerecon-run-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try await poll(until: { !process.isRunning }, deadline: .seconds(60), "\(executable) exit")
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw TestSupportError(
                "\(executable) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw TestSupportError("bind() failed") }
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestSupportError("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
