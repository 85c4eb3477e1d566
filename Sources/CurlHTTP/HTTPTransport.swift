/// Sends one request and returns its complete response: `CurlHTTPClient` in production, an
/// in-memory fake in tests of code that speaks HTTP (the gateway adapter, the sandbox's callbacks).
public protocol HTTPTransport: Sendable {
    /// `timeout` overrides the transport's own total timeout for this request.
    func execute(_ request: HTTPClientRequest, timeout: Duration?) async throws(HTTPClientError) -> HTTPClientResponse
}

extension HTTPTransport {
    public func execute(_ request: HTTPClientRequest) async throws(HTTPClientError) -> HTTPClientResponse {
        try await execute(request, timeout: nil)
    }
}

extension CurlHTTPClient: HTTPTransport {
    public func execute(_ request: HTTPClientRequest, timeout: Duration?) async throws(HTTPClientError) -> HTTPClientResponse {
        try await execute(request, timeout: timeout, connectTimeout: nil, logger: nil)
    }
}
