import CurlHTTP
import Foundation
import Signing
import Synchronization

/// What one request of a closed-loop run ended as.
enum RequestOutcome: Sendable {
    /// The answer the benchmark expects.
    case ok
    /// An answer, but not the expected one (wrong status, bad signature, unexpected body).
    case unexpected(String)
    /// No answer (transport error or timeout).
    case failed(String)
}

/// Latencies (microseconds) and outcome counts of one worker, merged at the end of a run.
struct WorkerTally: Sendable {
    var latencies: [Int64] = []
    var ok = 0
    var unexpected: [String: Int] = [:]
    var failed: [String: Int] = [:]

    mutating func record(_ outcome: RequestOutcome, microseconds: Int64) {
        latencies.append(microseconds)
        switch outcome {
        case .ok: ok += 1
        case .unexpected(let why): unexpected[why, default: 0] += 1
        case .failed(let why): failed[why, default: 0] += 1
        }
    }

    mutating func merge(_ other: WorkerTally) {
        latencies.append(contentsOf: other.latencies)
        ok += other.ok
        unexpected.merge(other.unexpected, uniquingKeysWith: +)
        failed.merge(other.failed, uniquingKeysWith: +)
    }
}

/// The merged result of a run, printed as one `RESULT key=value …` line for the scripts to parse.
struct LoadReport {
    var tally: WorkerTally
    var seconds: Double
    /// User + system CPU seconds of this process during the run (not its start-up).
    var cpuSeconds: Double

    var requests: Int { tally.latencies.count }

    func percentile(_ p: Double) -> Double {
        let sorted = tally.latencies.sorted()
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
        return Double(sorted[index]) / 1000
    }

    /// `extra` fields come first, then the common ones.
    func line(_ extra: [(String, String)]) -> String {
        var fields = extra
        fields.append(("requests", "\(requests)"))
        fields.append(("ok", "\(tally.ok)"))
        fields.append(("unexpected", "\(tally.unexpected.values.reduce(0, +))"))
        fields.append(("failed", "\(tally.failed.values.reduce(0, +))"))
        fields.append(("seconds", String(format: "%.3f", seconds)))
        fields.append(("ok_per_s", String(format: "%.1f", Double(tally.ok) / max(seconds, 1e-9))))
        fields.append(("p50_ms", String(format: "%.3f", percentile(0.50))))
        fields.append(("p99_ms", String(format: "%.3f", percentile(0.99))))
        fields.append(("max_ms", String(format: "%.3f", percentile(1.0))))
        fields.append(("cpu_us_per_request", String(format: "%.1f", cpuSeconds * 1e6 / Double(max(1, requests)))))
        return "RESULT " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    /// Reasons for unexpected and failed answers, on stderr, so a broken run says why.
    func printProblems() {
        for (why, n) in tally.unexpected.sorted(by: { $0.value > $1.value }).prefix(10) {
            FileHandle.standardError.write(Data("unexpected ×\(n): \(why)\n".utf8))
        }
        for (why, n) in tally.failed.sorted(by: { $0.value > $1.value }).prefix(10) {
            FileHandle.standardError.write(Data("failed ×\(n): \(why)\n".utf8))
        }
    }
}

/// Hands out work item indices across workers, each index once, up to a bound.
final class ItemSource: Sendable {
    private let next: Atomic<Int>
    let count: Int

    init(count: Int) {
        next = Atomic(0)
        self.count = count
    }

    /// The next unused index, or nil when all are used.
    func take() -> Int? {
        let item = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return item < count ? item : nil
    }

    /// How many were handed out (at most `count`).
    var used: Int { min(count, next.load(ordering: .relaxed)) }
}

/// Runs `concurrency` workers in a closed loop (each sends its next request when the previous
/// one is answered) until `duration` has passed or the work runs out. Each worker owns a state
/// made by `makeState`; `step` takes its item from `items` (so each is used once) and returns the
/// outcome, or nil when there is no more work, which ends that worker. Bounded in time by the
/// deadline and in count by `items`.
func runClosedLoop<State>(
    concurrency: Int, duration: Double, items: ItemSource,
    makeState: @escaping @Sendable (_ worker: Int) -> State,
    step: @escaping @Sendable (_ state: inout State, _ items: ItemSource) async -> RequestOutcome?
) async -> LoadReport {
    let clock = ContinuousClock()
    let cpuAtStart = processCPUSeconds()
    let start = clock.now
    let end = start + .milliseconds(Int(duration * 1000))
    let tally = await withTaskGroup(of: WorkerTally.self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                var state = makeState(worker)
                var tally = WorkerTally()
                tally.latencies.reserveCapacity(Int(duration * 40_000) / max(1, concurrency) + 1024)
                // At most one request per item plus as many again (duplicates), whatever happens.
                for _ in 0..<(2 * items.count + 1) {
                    guard clock.now < end else { break }
                    let began = clock.now
                    guard let outcome = await step(&state, items) else { break }
                    let (seconds, attoseconds) = (clock.now - began).components
                    tally.record(outcome, microseconds: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
                }
                return tally
            }
        }
        var merged = WorkerTally()
        for await part in group { merged.merge(part) }
        return merged
    }
    let (seconds, attoseconds) = (clock.now - start).components
    return LoadReport(
        tally: tally, seconds: Double(seconds) + Double(attoseconds) / 1e18, cpuSeconds: processCPUSeconds() - cpuAtStart)
}

/// User + system CPU time of this process so far, in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A text file of one record a line, fields separated by tabs (what `COPY … TO STDOUT` writes),
/// empty lines skipped. Lines are split only when asked for, so a file of a million records
/// loads in a moment.
final class RecordFile: Sendable {
    private let bytes: [UInt8]
    /// Start and end (exclusive) of each non-empty line.
    private let lines: [Range<Int>]

    init(path: String) throws {
        bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        var lines: [Range<Int>] = []
        var start = 0
        for (i, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
            if i > start { lines.append(start..<i) }
            start = i + 1
        }
        if bytes.count > start { lines.append(start..<bytes.count) }
        self.lines = lines
    }

    var count: Int { lines.count }

    /// The fields of record `index`.
    func fields(_ index: Int) -> [String] {
        bytes[lines[index]].split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
    }
}

/// A secret given inline or, when it starts with `@`, read from that file (whitespace trimmed).
func readSecretArgument(_ text: String) throws -> String {
    guard text.hasPrefix("@") else { return text }
    return try String(contentsOfFile: String(text.dropFirst()), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// An HTTP client for load generation: plain-HTTP loopback peers, enough connections for every
/// worker, and a generous timeout so a slow answer is measured rather than dropped.
func makeLoadClient(connections: Int, timeout: Double) throws -> CurlHTTPClient {
    var configuration = CurlHTTPClient.Configuration()
    configuration.maxConnectionsPerHost = connections
    configuration.maxCachedConnections = max(connections, 16)
    configuration.timeout = .milliseconds(Int(timeout * 1000))
    configuration.connectTimeout = .seconds(5)
    configuration.userAgent = "feerecon-bench"
    return try CurlHTTPClient(configuration: configuration)
}

/// A short, low-cardinality description of a transport error for the problem counts.
func describe(_ error: any Error) -> String {
    (error as? HTTPClientError).map { "\($0.phase.code)" } ?? "\(type(of: error))"
}

/// Whether a reply carries a valid signature under `verifier`; the failure code if not.
func replySignatureProblem(_ response: HTTPClientResponse, _ verifier: WebhookVerifier) -> String? {
    do throws(WebhookVerificationError) {
        _ = try verifier.verify(headers: { response.headers[$0] }, body: response.body)
        return nil
    } catch {
        return error.code
    }
}
