import CCurl
import CShims

/// The client's configuration turned into curl options once, then applied to a (freshly reset)
/// easy handle for each transfer.
struct EasyOptions: Sendable {
    private let verifyPeer: Int
    private let verifyHost: Int
    private let caFile: String?
    private let clientCertificate: CurlHTTPClient.ClientCertificate?
    private let proxy: String
    private let noProxy: String
    private let userAgent: String
    private let followRedirects: Bool
    private let maxRedirects: Int
    private let tcpKeepAlive: Bool
    private let maxBodySize: Int

    init(_ configuration: CurlHTTPClient.Configuration) {
        verifyPeer = configuration.tls.verifyPeer ? 1 : 0
        verifyHost = configuration.tls.verifyHost ? 2 : 0
        caFile = configuration.tls.caFile
        clientCertificate = configuration.tls.clientCertificate
        // An empty proxy disables proxies entirely, including the environment's http_proxy.
        proxy = configuration.proxy?.url ?? ""
        noProxy = configuration.proxy?.bypass ?? "*"
        userAgent = configuration.userAgent
        followRedirects = configuration.followRedirects
        maxRedirects = configuration.maxRedirects
        tcpKeepAlive = configuration.tcpKeepAlive
        maxBodySize = configuration.maxResponseBodySize
    }

    func apply(to handle: EasyHandle, for transfer: Transfer, share: UnsafeMutableRawPointer) -> CURLcode {
        let easy = handle.easy
        let request = transfer.request
        var code = CURLE_OK
        func set(_ option: CURLoption, _ value: Int) {
            if code == CURLE_OK { code = feerecon_curl_easy_setopt_long(easy, option, value) }
        }
        func set(_ option: CURLoption, _ value: String) {
            if code == CURLE_OK { code = feerecon_curl_easy_setopt_string(easy, option, value) }
        }
        func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) {
            if code == CURLE_OK { code = feerecon_curl_easy_setopt_pointer(easy, option, pointer) }
        }

        handle.errorBuffer[0] = 0
        set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(handle.errorBuffer))
        set(CURLOPT_URL, request.url)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_SHARE, pointer: share)
        set(CURLOPT_TIMEOUT_MS, transfer.timeoutMilliseconds)
        set(CURLOPT_CONNECTTIMEOUT_MS, transfer.connectTimeoutMilliseconds)
        set(CURLOPT_SSL_VERIFYPEER, verifyPeer)
        set(CURLOPT_SSL_VERIFYHOST, verifyHost)
        if let caFile { set(CURLOPT_CAINFO, caFile) }
        if let clientCertificate {
            set(CURLOPT_SSLCERT, clientCertificate.certificateFile)
            set(CURLOPT_SSLKEY, clientCertificate.privateKeyFile)
            if let password = clientCertificate.privateKeyPassword { set(CURLOPT_KEYPASSWD, password) }
        }
        set(CURLOPT_PROXY, proxy)
        set(CURLOPT_NOPROXY, noProxy)
        set(CURLOPT_USERAGENT, userAgent)
        set(CURLOPT_FOLLOWLOCATION, followRedirects ? 1 : 0)
        set(CURLOPT_MAXREDIRS, maxRedirects)
        set(CURLOPT_TCP_KEEPALIVE, tcpKeepAlive ? 1 : 0)
        if code == CURLE_OK { code = feerecon_curl_easy_setopt_off_t(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(maxBodySize)) }

        let context = Unmanaged.passUnretained(transfer).toOpaque()
        if code == CURLE_OK {
            code = feerecon_curl_easy_setopt_write_function(easy, CURLOPT_WRITEFUNCTION) { data, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                let length = size * count
                return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
            }
        }
        set(CURLOPT_WRITEDATA, pointer: context)
        if code == CURLE_OK {
            code = feerecon_curl_easy_setopt_write_function(easy, CURLOPT_HEADERFUNCTION) { data, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                let length = size * count
                transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
                return length
            }
        }
        set(CURLOPT_HEADERDATA, pointer: context)

        let sendsBody: Bool
        switch request.method {
        case .get where request.body.isEmpty:
            set(CURLOPT_HTTPGET, 1)
            sendsBody = false
        case .head:
            set(CURLOPT_NOBODY, 1)
            sendsBody = false
        case .post, .put, .patch:
            sendsBody = true
        default:
            sendsBody = !request.body.isEmpty
        }
        if sendsBody {
            if code == CURLE_OK {
                code = feerecon_curl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            }
            // curl copies the bytes; an empty body still needs a valid pointer.
            request.body.withUnsafeBytes { bytes in
                var empty: UInt8 = 0
                withUnsafeMutablePointer(to: &empty) { fallback in
                    set(CURLOPT_COPYPOSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: bytes.baseAddress) ?? UnsafeMutableRawPointer(fallback))
                }
            }
        }
        let customMethod = switch request.method {
        case .head, .post: false
        case .get: sendsBody
        default: true
        }
        if customMethod { set(CURLOPT_CUSTOMREQUEST, request.method.rawValue) }

        var list: UnsafeMutablePointer<curl_slist>?
        func append(_ line: String) {
            if let longer = curl_slist_append(list, line) { list = longer } else { code = CURLE_OUT_OF_MEMORY }
        }
        for field in request.headers {
            // "Name;" is curl's way of sending a header with an empty value ("Name:" removes it).
            append(field.value.isEmpty ? field.name + ";" : field.name + ": " + field.value)
        }
        if !request.headers.contains(name: "expect") { append("Expect:") }
        if sendsBody, !request.headers.contains(name: "content-type") { append("Content-Type:") }
        transfer.headerList = list
        set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(list))
        return code
    }
}
