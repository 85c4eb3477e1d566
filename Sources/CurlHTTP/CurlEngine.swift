import CCurl
import CShims
import DequeModule
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libcurl's global initialisation, done once before the first handle (thread-safe in Swift).
private let curlGlobalInitialisation: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// One OS thread that drives a curl multi handle: it takes new transfers and cancellations from a
/// mutex-protected queue (woken by `curl_multi_wakeup`), runs `curl_multi_perform`, collects
/// finished transfers with `curl_multi_info_read` and sleeps in `curl_multi_poll`. Nothing here
/// ever blocks a Swift concurrency thread.
///
/// `@unchecked Sendable` because the only state touched from other threads is `shared` (a Mutex)
/// and `multi` through `curl_multi_wakeup`, which curl documents as thread-safe and which is only
/// called under the mutex while the handle is alive; all other state belongs to the driver thread.
final class CurlEngine: @unchecked Sendable {
    enum Command {
        case start(Transfer)
        case cancel(Transfer)
    }

    private enum State {
        case running
        case stopping
        case stopped
    }

    private struct Shared {
        var commands = Deque<Command>()
        var state = State.running
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let shared = Mutex(Shared())
    private let multi: UnsafeMutableRawPointer
    private let share: UnsafeMutableRawPointer
    private let options: EasyOptions

    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idleHandles: [EasyHandle] = []
    private static let maxIdleHandles = 256

    init(configuration: CurlHTTPClient.Configuration) throws(HTTPClientError) {
        guard curlGlobalInitialisation == CURLE_OK else { throw HTTPClientError(.other, curlCode: Int(curlGlobalInitialisation.rawValue)) }
        guard let multi = curl_multi_init() else { throw HTTPClientError(.other) }
        guard let share = curl_share_init() else {
            curl_multi_cleanup(multi)
            throw HTTPClientError(.other)
        }
        self.multi = multi
        self.share = share
        options = EasyOptions(configuration)
        // One thread uses every handle, so the share needs no lock callbacks.
        _ = feerecon_curl_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue))
        _ = feerecon_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(0, configuration.maxConnectionsPerHost))
        _ = feerecon_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(1, configuration.maxCachedConnections))
    }

    /// Starts the driver thread; the thread keeps the engine alive until it has torn down.
    func start() throws(HTTPClientError) {
        let retained = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            let engine = Unmanaged<CurlEngine>.fromOpaque(argument!).takeRetainedValue()
            engine.run()
            return nil
        }, retained.toOpaque())
        guard rc == 0 else {
            retained.release()
            curl_share_cleanup(share)
            curl_multi_cleanup(multi)
            throw HTTPClientError(.other)
        }
        pthread_detach(thread)
    }

    /// Queues a transfer; `false` if the engine is shutting down (the transfer was not taken).
    func submit(_ transfer: Transfer) -> Bool {
        enqueue(.start(transfer))
    }

    func cancel(_ transfer: Transfer) {
        _ = enqueue(.cancel(transfer))
    }

    private func enqueue(_ command: Command) -> Bool {
        shared.withLock { shared in
            guard case .running = shared.state else { return false }
            let wasEmpty = shared.commands.isEmpty
            shared.commands.append(command)
            // A non-empty queue has a wakeup pending already: the driver drains it whole.
            if wasEmpty { curl_multi_wakeup(multi) }
            return true
        }
    }

    /// Stops taking requests, fails those in flight with `shutdown`, and tears down; `waiter`,
    /// if given, resumes once the driver thread has released every curl handle.
    func requestShutdown(waiter: CheckedContinuation<Void, Never>? = nil) {
        let alreadyStopped = shared.withLock { shared -> Bool in
            switch shared.state {
            case .stopped:
                return true
            case .running:
                shared.state = .stopping
                curl_multi_wakeup(multi)
            case .stopping:
                break
            }
            if let waiter { shared.shutdownWaiters.append(waiter) }
            return false
        }
        if alreadyStopped { waiter?.resume() }
    }

    // MARK: Driver thread

    private func run() {
        var pipe = sigset_t()
        sigemptyset(&pipe)
        sigaddset(&pipe, SIGPIPE)
        // TLS writes to a closed peer raise SIGPIPE on this thread; blocked, they fail with EPIPE.
        pthread_sigmask(SIG_BLOCK, &pipe, nil)
        feerecon_set_current_thread_name("curl-http")

        var running: Int32 = 0
        while true {
            let (commands, stopping) = shared.withLock { shared -> (Deque<Command>, Bool) in
                var taken = Deque<Command>()
                swap(&taken, &shared.commands)
                return (taken, shared.state != .running)
            }
            for command in commands {
                handle(command, stopping: stopping)
            }
            if stopping { break }
            curl_multi_perform(multi, &running)
            collectFinished()
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        tearDown()
    }

    private func handle(_ command: Command, stopping: Bool) {
        switch command {
        case .start(let transfer):
            if transfer.cancelRequested {
                finish(transfer, with: .failure(HTTPClientError(.cancelled, host: hostOf(transfer))))
            } else if stopping {
                finish(transfer, with: .failure(HTTPClientError(.shutdown, host: hostOf(transfer))))
            } else {
                begin(transfer)
            }
        case .cancel(let transfer):
            guard !transfer.isDone else { return }
            guard let handle = transfer.handle else {
                transfer.cancelRequested = true
                return
            }
            curl_multi_remove_handle(multi, handle.easy)
            active[handle.easy] = nil
            finish(transfer, with: .failure(HTTPClientError(.cancelled, host: hostOf(transfer))))
        }
    }

    private func begin(_ transfer: Transfer) {
        guard let handle = idleHandles.popLast() ?? EasyHandle() else {
            finish(transfer, with: .failure(HTTPClientError(.other, host: hostOf(transfer))))
            return
        }
        transfer.handle = handle
        let code = options.apply(to: handle, for: transfer, share: share)
        guard code == CURLE_OK else {
            finish(transfer, with: .failure(error(for: code, transfer: transfer)))
            return
        }
        guard curl_multi_add_handle(multi, handle.easy) == CURLM_OK else {
            finish(transfer, with: .failure(HTTPClientError(.other, host: hostOf(transfer))))
            return
        }
        active[handle.easy] = transfer
    }

    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            curl_multi_remove_handle(multi, easy)
            guard let transfer = active.removeValue(forKey: easy) else { continue }
            complete(transfer, code: code)
        }
    }

    private func complete(_ transfer: Transfer, code: CURLcode) {
        guard code == CURLE_OK, let handle = transfer.handle else {
            finish(transfer, with: .failure(error(for: code, transfer: transfer)))
            return
        }
        var status = 0
        _ = feerecon_curl_easy_getinfo_long(handle.easy, CURLINFO_RESPONSE_CODE, &status)
        let response = HTTPClientResponse(
            status: status, headers: HTTPHeaders(fields: transfer.responseHeaders), body: transfer.responseBody)
        transfer.responseHeaders = []
        transfer.responseBody = []
        finish(transfer, with: .success(response))
    }

    private func finish(_ transfer: Transfer, with result: Result<HTTPClientResponse, HTTPClientError>) {
        transfer.isDone = true
        if let handle = transfer.handle {
            transfer.handle = nil
            curl_easy_reset(handle.easy)
            if idleHandles.count < Self.maxIdleHandles { idleHandles.append(handle) }
        }
        if let list = transfer.headerList {
            transfer.headerList = nil
            curl_slist_free_all(list)
        }
        let continuation = transfer.continuation
        transfer.continuation = nil
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    private func tearDown() {
        for (easy, transfer) in active {
            curl_multi_remove_handle(multi, easy)
            finish(transfer, with: .failure(HTTPClientError(.shutdown, host: hostOf(transfer))))
        }
        active.removeAll()
        let (leftover, waiters) = shared.withLock { shared in
            shared.state = .stopped
            var taken = Deque<Command>()
            swap(&taken, &shared.commands)
            let waiters = shared.shutdownWaiters
            shared.shutdownWaiters = []
            return (taken, waiters)
        }
        for case .start(let transfer) in leftover {
            finish(transfer, with: .failure(HTTPClientError(.shutdown, host: hostOf(transfer))))
        }
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
        curl_share_cleanup(share)
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Errors

    private func error(for code: CURLcode, transfer: Transfer) -> HTTPClientError {
        let phase: HTTPClientError.Phase
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            phase = .dnsResolution
        case CURLE_COULDNT_CONNECT:
            phase = .connect
        case CURLE_OPERATION_TIMEDOUT:
            phase = timedOutWhileConnecting(transfer) && transfer.connectTimeoutMilliseconds < transfer.timeoutMilliseconds
                ? .connectTimeout : .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
             CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED:
            phase = .tls
        case CURLE_SEND_ERROR where receivedTLSAlert(transfer), CURLE_RECV_ERROR where receivedTLSAlert(transfer):
            // With TLS 1.3 a server rejects a client certificate after the handshake, as an alert.
            phase = .tls
        case CURLE_SEND_ERROR, CURLE_READ_ERROR, CURLE_SEND_FAIL_REWIND:
            phase = .send
        case CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2,
             CURLE_HTTP2_STREAM, CURLE_BAD_CONTENT_ENCODING:
            phase = .receive
        case CURLE_FILESIZE_EXCEEDED:
            phase = .responseTooLarge
        case CURLE_WRITE_ERROR where transfer.bodyTooLarge:
            phase = .responseTooLarge
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_BAD_FUNCTION_ARGUMENT:
            phase = .invalidRequest
        default:
            phase = .other
        }
        return HTTPClientError(phase, curlCode: Int(code.rawValue), host: hostOf(transfer))
    }

    private func receivedTLSAlert(_ transfer: Transfer) -> Bool {
        guard let message = transfer.handle?.errorMessage else { return false }
        return message.hasPrefix("OpenSSL SSL_") && message.contains(" alert ")
    }

    /// Whether curl gave up before the connection (TLS included) was established.
    private func timedOutWhileConnecting(_ transfer: Transfer) -> Bool {
        guard let handle = transfer.handle else { return false }
        let message = handle.errorMessage
        if message.hasPrefix("Resolving timed out") || message.hasPrefix("Connection timed out")
            || message.hasPrefix("SSL connection timeout")
        {
            return true
        }
        var connected: curl_off_t = 0
        _ = feerecon_curl_easy_getinfo_off_t(handle.easy, CURLINFO_CONNECT_TIME_T, &connected)
        return connected == 0
    }

    private func hostOf(_ transfer: Transfer) -> String? {
        URLParts.hostAndPort(of: transfer.request.url)
    }
}

/// The host (and explicit port) of a URL, parsed by curl's own URL parser so it agrees with
/// what curl connects to. Used only to name the host in errors.
enum URLParts {
    static func hostAndPort(of url: String) -> String? {
        guard let handle = curl_url() else { return nil }
        defer { curl_url_cleanup(handle) }
        guard curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK else { return nil }
        guard var host = part(handle, CURLUPART_HOST) else { return nil }
        if let port = part(handle, CURLUPART_PORT) { host += ":" + port }
        return host
    }

    private static func part(_ handle: OpaquePointer, _ which: CURLUPart) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard curl_url_get(handle, which, &value, 0) == CURLUE_OK, let value else { return nil }
        defer { curl_free(value) }
        return String(cString: value)
    }
}
