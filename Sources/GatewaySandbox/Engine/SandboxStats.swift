import Synchronization

/// Requests and total handler time per endpoint, so a benchmark can report the sandbox's own
/// share of a round trip (`GET /sandbox/stats`).
final class SandboxStats: Sendable {
    struct Entry: Sendable, Codable, Equatable {
        var requests: Int64 = 0
        var totalHandlerNanoseconds: Int64 = 0
        var maxHandlerNanoseconds: Int64 = 0
    }

    private let entries = Mutex<[String: Entry]>([:])

    func record(_ endpoint: String, nanoseconds: Int64) {
        entries.withLock { entries in
            var entry = entries[endpoint] ?? Entry()
            entry.requests += 1
            entry.totalHandlerNanoseconds += nanoseconds
            entry.maxHandlerNanoseconds = max(entry.maxHandlerNanoseconds, nanoseconds)
            entries[endpoint] = entry
        }
    }

    /// Times `body` and records it under `endpoint`.
    func measure<T>(_ endpoint: String, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            let (seconds, attoseconds) = elapsed.components
            record(endpoint, nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
        return try await body()
    }

    var snapshot: [String: Entry] { entries.withLock { $0 } }

    func reset() { entries.withLock { $0 = [:] } }
}
