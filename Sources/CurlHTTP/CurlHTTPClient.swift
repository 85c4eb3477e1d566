import Logging

/// The outbound HTTP client over libcurl. One dedicated thread drives every transfer through a
/// curl multi handle, so many requests are in flight at once, connections are reused, and no
/// Swift concurrency thread or event loop ever blocks on the network.
///
/// Call `shutdown()` when done; a client that is released without it shuts down on its own.
public final class CurlHTTPClient: Sendable {
    public let configuration: Configuration
    private let engine: CurlEngine
    private let logger: Logger

    public init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "feerecon.http-client")
    ) throws(HTTPClientError) {
        self.configuration = configuration
        self.logger = logger
        engine = try CurlEngine(configuration: configuration)
        try engine.start()
    }

    deinit {
        engine.requestShutdown()
    }

    /// Sends `request` and returns the complete response, whatever its status. `timeout` and
    /// `connectTimeout` override the client's for this request. Cancelling the calling task
    /// aborts the transfer and throws `cancelled`.
    public func execute(
        _ request: HTTPClientRequest,
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil,
        logger: Logger? = nil
    ) async throws(HTTPClientError) -> HTTPClientResponse {
        let logger = logger ?? self.logger
        guard request.method.isValid,
              request.headers.allSatisfy({ HTTPHeaders.isValidName($0.name) && HTTPHeaders.isValidValue($0.value) }),
              !request.url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F })
        else {
            throw HTTPClientError(.invalidRequest, host: URLParts.hostAndPort(of: request.url))
        }
        let transfer = Transfer(
            request: request,
            timeoutMilliseconds: Self.milliseconds(timeout ?? configuration.timeout),
            connectTimeoutMilliseconds: Self.milliseconds(connectTimeout ?? configuration.connectTimeout),
            maxBodySize: configuration.maxResponseBodySize)
        let engine = self.engine
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    transfer.continuation = continuation
                    if !engine.submit(transfer) {
                        transfer.continuation = nil
                        continuation.resume(throwing: HTTPClientError(.shutdown, host: URLParts.hostAndPort(of: request.url)))
                    }
                }
            } onCancel: {
                engine.cancel(transfer)
            }
        } catch let error as HTTPClientError {
            logger.debug("http request failed", metadata: [
                "http.phase": "\(error.phase.code)",
                "http.host": "\(error.host ?? "-")",
                "curl.code": "\(error.curlCode.map(String.init) ?? "-")",
            ])
            throw error
        } catch {
            throw HTTPClientError(.other, host: URLParts.hostAndPort(of: request.url))
        }
    }

    /// Stops the client: new requests fail with `shutdown`, requests in flight are aborted with
    /// `shutdown`, and this returns once every curl handle is released. Safe to call repeatedly.
    public func shutdown() async {
        await withCheckedContinuation { continuation in
            engine.requestShutdown(waiter: continuation)
        }
    }

    /// Whole milliseconds, rounded up, at least 1 (curl reads 0 as "no timeout").
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 1 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Int.max }
        let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return max(1, Int(whole + fraction))
    }
}
