import Foundation

/// The `feerecon` executable built alongside the tests.
public enum FeeReconExecutable {
    /// Next to the test bundle (`.build/<triple>/debug/`), else `.build/debug/` of this checkout.
    public static func url() throws -> URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let checkout = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [
            bundleDirectory.appendingPathComponent("feerecon"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("feerecon"),
            checkout.appendingPathComponent(".build/debug/feerecon"),
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestSupportError(
                "feerecon executable not found (looked in \(candidates.map(\.path))); build with `swift build --build-tests`")
        }
        return found
    }
}

/// A child process whose combined output is captured in a file (so nothing blocks on a pipe).
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is only read after launch (Foundation's Process is thread-safe for
    // isRunning/terminationStatus); `log` is immutable.
    private let process = Process()
    private let log: URL

    public init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws {
        log = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("feerecon-child-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
    }

    deinit { try? FileManager.default.removeItem(at: log) }

    /// Waits for the process to exit; kills it and throws if it outlives `deadline`.
    public func wait(deadline: Duration) async throws {
        do {
            try await poll(until: { !self.process.isRunning }, deadline: deadline, "\(process.executableURL?.lastPathComponent ?? "child") exit")
        } catch {
            process.terminate()
            throw error
        }
    }

    public var status: Int32 { process.terminationStatus }

    public var isRunning: Bool { process.isRunning }

    /// Sends `signal` (e.g. `SIGKILL`) to the process.
    public func send(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
}
