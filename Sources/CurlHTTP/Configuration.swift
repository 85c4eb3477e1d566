extension CurlHTTPClient {
    /// Per-client settings. The defaults are safe for production: TLS verification on, no
    /// redirects, no proxy (not even from the environment).
    public struct Configuration: Sendable {
        /// Time allowed for DNS, TCP connect and the TLS handshake.
        public var connectTimeout: Duration = .seconds(10)
        /// Time allowed for the whole request, connecting included; overridable per request.
        public var timeout: Duration = .seconds(30)
        public var tls = TLS()
        /// Responses with a larger body fail with `responseTooLarge`.
        public var maxResponseBodySize = 64 * 1024 * 1024
        /// Open connections to one host at most; further requests wait for a free one. 0 is no limit.
        public var maxConnectionsPerHost = 64
        /// Idle connections kept for reuse across all hosts.
        public var maxCachedConnections = 256
        /// Whether to follow 3xx redirects (at most `maxRedirects`, `http`/`https` only).
        public var followRedirects = false
        public var maxRedirects = 5
        /// The proxy to use; `nil` means none, whatever `http_proxy` and friends say.
        public var proxy: Proxy?
        /// Sent unless a request carries its own `User-Agent`.
        public var userAgent = "FeeRecon"
        /// TCP keep-alive probes on idle pooled connections, so dead peers are noticed.
        public var tcpKeepAlive = true

        public init() {}
    }

    /// How the server's certificate is checked and which client certificate is presented.
    public struct TLS: Sendable {
        /// Verify the peer's certificate chain. Only ever off in a test that says why.
        public var verifyPeer = true
        /// Verify that the certificate names the host.
        public var verifyHost = true
        /// PEM file of trusted CA certificates instead of the system's bundle.
        public var caFile: String?
        /// Presented to servers that ask for one (mTLS).
        public var clientCertificate: ClientCertificate?

        public init() {}
    }

    /// A PEM certificate (chain) and its private key for mutual TLS. The password is never shown.
    public struct ClientCertificate: Sendable, CustomStringConvertible, CustomReflectable {
        public var certificateFile: String
        public var privateKeyFile: String
        public var privateKeyPassword: String?

        public init(certificateFile: String, privateKeyFile: String, privateKeyPassword: String? = nil) {
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.privateKeyPassword = privateKeyPassword
        }

        public var description: String { "ClientCertificate(\(certificateFile))" }
        public var customMirror: Mirror { Mirror(self, children: ["certificateFile": certificateFile]) }
    }

    /// An HTTP(S) proxy and the hosts that bypass it (curl's `NOPROXY` syntax). Its URL may
    /// carry credentials, so it is never shown.
    public struct Proxy: Sendable, CustomStringConvertible, CustomReflectable {
        public var url: String
        public var bypass: String

        public init(url: String, bypass: String = "localhost,127.0.0.1,::1") {
            self.url = url
            self.bypass = bypass
        }

        public var description: String { "Proxy(redacted)" }
        public var customMirror: Mirror { Mirror(self, children: ["bypass": bypass]) }
    }
}
