/// Why a request failed: the phase it failed in, the curl code if curl reported one, and the
/// host. Its description names the phase and the host (and port), never a path, query, header
/// value or body.
public struct HTTPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Where a request failed; `code` is a short stable label for metrics and logs.
    public struct Phase: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case dnsResolution = "dns"
            case connect
            case tls
            case connectTimeout = "connect_timeout"
            case timeout
            case send
            case receive
            case responseTooLarge = "response_too_large"
            case cancelled
            case shutdown
            case invalidRequest = "invalid_request"
            case other
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The host name could not be resolved.
        public static let dnsResolution = Phase(.dnsResolution)
        /// The TCP connection was refused or failed.
        public static let connect = Phase(.connect)
        /// The TLS handshake failed: certificate verification, client certificate, protocol.
        public static let tls = Phase(.tls)
        /// The connect timeout passed before the connection (TLS included) was up.
        public static let connectTimeout = Phase(.connectTimeout)
        /// The total timeout passed; the request may have reached the server.
        public static let timeout = Phase(.timeout)
        /// Sending the request failed; it may have partly reached the server.
        public static let send = Phase(.send)
        /// Receiving the response failed or the server sent nothing or garbage.
        public static let receive = Phase(.receive)
        /// The response body was over the configured maximum.
        public static let responseTooLarge = Phase(.responseTooLarge)
        /// The calling task was cancelled.
        public static let cancelled = Phase(.cancelled)
        /// The client was shut down before the request completed.
        public static let shutdown = Phase(.shutdown)
        /// The request was unusable: bad method, header, URL or scheme. Nothing was sent.
        public static let invalidRequest = Phase(.invalidRequest)
        /// Anything else curl reported.
        public static let other = Phase(.other)

        public var code: String { base.rawValue }
        public var description: String { base.rawValue }

        var requestMayHaveBeenSent: Bool {
            switch base {
            case .dnsResolution, .connect, .tls, .connectTimeout, .invalidRequest: false
            case .timeout, .send, .receive, .responseTooLarge, .cancelled, .shutdown, .other: true
            }
        }
    }

    public let phase: Phase
    /// The `CURLcode`, when curl reported the failure.
    public let curlCode: Int?
    /// `host` or `host:port` of the request's URL, when it could be parsed.
    public let host: String?

    /// Public so that fakes of `HTTPTransport` can fail the way the real client does.
    public init(_ phase: Phase, curlCode: Int? = nil, host: String? = nil) {
        self.phase = phase
        self.curlCode = curlCode
        self.host = host
    }

    /// Whether the server may have received (part of) the request, so its effect is unknown and
    /// must be found out (e.g. by a query) rather than assumed not to have happened. `false` only
    /// for phases in which no connection the server accepted existed.
    public var requestMayHaveBeenSent: Bool { phase.requestMayHaveBeenSent }

    public var description: String {
        var text = "HTTP request"
        if let host { text += " to \(host)" }
        text += " failed: \(phase.code)"
        if let curlCode { text += " (curl \(curlCode))" }
        return text
    }
}
