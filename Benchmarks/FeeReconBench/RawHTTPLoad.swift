import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 answer as the raw load generator read it. Header values are made into strings
/// only when asked for.
struct RawResponse {
    var status: Int
    var body: [UInt8]
    /// The bytes of the header block and, per field, where its name and value are.
    fileprivate var head: ArraySlice<UInt8>
    fileprivate var fields: [(name: Range<Int>, value: Range<Int>)]

    /// The first field named `name` (ASCII, compared case-insensitively).
    subscript(header name: String) -> String? {
        let wanted = Array(name.utf8)
        for field in fields where field.name.count == wanted.count {
            if zip(head[field.name], wanted).allSatisfy({ RawHTTPLoad.lower($0) == RawHTTPLoad.lower($1) }) {
                return String(decoding: head[field.value], as: UTF8.self)
            }
        }
        return nil
    }
}

/// One request to send and what to make of its answer.
struct RawRequest {
    var bytes: [UInt8]
    var judge: (RawResponse) -> RequestOutcome
}

/// A closed-loop load generator for loopback HTTP/1.1 servers: `connections` kept-alive TCP
/// connections driven by one thread with `poll`, each sending its next request as soon as the
/// previous answer is complete. It does what a load generator must and nothing else (no TLS, no
/// redirects, `Content-Length` or chunked bodies), so its cost per request is a few system calls —
/// a small share of the machine it shares with the system under test. Linux (Glibc) only.
enum RawHTTPLoad {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private enum Phase {
        case idle
        case writing
        case reading
    }

    private final class Connection {
        let fd: Int32
        let index: Int
        var phase = Phase.idle
        /// `next` had nothing more for this connection.
        var done = false
        var out: [UInt8] = []
        var written = 0
        var input: [UInt8] = []
        var started: UInt64 = 0
        var judge: ((RawResponse) -> RequestOutcome)?
        var closed = false

        init(fd: Int32, index: Int) {
            self.fd = fd
            self.index = index
            input.reserveCapacity(4096)
        }
    }

    /// Runs until `duration` seconds have passed or `next` returns nil for every connection.
    /// `next(connection)` makes that connection's next request. Bounded in time by the deadline
    /// (plus `timeout` for answers in flight) and in count by what `next` hands out.
    static func run(
        port: Int, connections: Int, duration: Double, timeout: Double, next: (Int) -> RawRequest?
    ) throws -> LoadReport {
        var pool: [Connection] = []
        defer { for c in pool where !c.closed { close(c.fd) } }
        for index in 0..<connections {
            let fd = try connect(port: port)
            pool.append(Connection(fd: fd, index: index))
        }

        var tally = WorkerTally()
        tally.latencies.reserveCapacity(Int(duration * 20_000) + 1024)
        let cpuAtStart = processCPUSeconds()
        let start = now()
        let end = start + UInt64(duration * 1e9)
        let hardEnd = end + UInt64(timeout * 1e9)
        var active = 0

        func send(_ index: Int) {
            let c = pool[index]
            guard !c.closed, !c.done, now() < end, let request = next(index) else {
                c.phase = .idle
                c.done = true
                return
            }
            c.out = request.bytes
            c.written = 0
            c.judge = request.judge
            c.started = now()
            c.phase = .writing
            active += 1
            write(c)
        }

        func finish(_ c: Connection, _ outcome: RequestOutcome) {
            tally.record(outcome, microseconds: Int64((now() - c.started) / 1000))
            c.judge = nil
            c.phase = .idle
            active -= 1
        }

        func fail(_ c: Connection, _ why: String) {
            if c.phase != .idle { finish(c, .failed(why)) }
            if !c.closed {
                close(c.fd)
                c.closed = true
            }
        }

        func write(_ c: Connection) {
            while c.phase == .writing {
                let n = c.out.withUnsafeBytes { buffer in
                    Glibc.send(c.fd, buffer.baseAddress! + c.written, buffer.count - c.written, Int32(MSG_NOSIGNAL))
                }
                if n > 0 {
                    c.written += n
                    if c.written == c.out.count {
                        c.phase = .reading
                        c.input.removeAll(keepingCapacity: true)
                    }
                } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    fail(c, "send failed")
                    return
                }
            }
        }

        /// Reads what is there, judging each complete answer and sending the next request.
        func read(_ c: Connection) {
            var chunk = [UInt8](repeating: 0, count: 16_384)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    guard c.phase == .reading else {
                        fail(c, "bytes without a request")
                        return
                    }
                    c.input.append(contentsOf: chunk[0..<n])
                    switch parse(c.input) {
                    case .incomplete: continue
                    case .invalid(let why): fail(c, why); return
                    case .complete(let response, let closeAfter):
                        let judge = c.judge!
                        finish(c, judge(response))
                        if closeAfter {
                            fail(c, "server closed the connection")
                            return
                        }
                        send(c.index)
                        if c.phase == .idle { return }
                    }
                } else if n == 0 {
                    fail(c, "server closed the connection")
                    return
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    return
                } else if errno != EINTR {
                    fail(c, "recv failed")
                    return
                }
            }
        }

        for index in pool.indices { send(index) }
        var fds = [pollfd](repeating: pollfd(), count: pool.count)
        // Each turn handles what is ready or waits at most 50 ms; the deadlines end the loop.
        for _ in 0..<Int.max {
            let time = now()
            if active == 0 && time >= end { break }
            if time >= hardEnd { break }
            for (i, c) in pool.enumerated() {
                fds[i].fd = c.closed || c.phase == .idle ? -1 : c.fd
                fds[i].events = Int16(c.phase == .writing ? POLLOUT : POLLIN)
                fds[i].revents = 0
            }
            let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), 50) }
            guard n >= 0 else {
                if errno == EINTR { continue }
                throw Failure(description: "poll failed")
            }
            for (i, c) in pool.enumerated() where fds[i].revents != 0 && !c.closed {
                let flags = Int32(fds[i].revents)
                if flags & Int32(POLLOUT) != 0 { write(c) }
                if flags & Int32(POLLIN | POLLHUP | POLLERR) != 0 { read(c) }
            }
            // Every connection out of work or closed: nothing more will happen.
            if active == 0 && pool.allSatisfy({ $0.closed || $0.done }) { break }
        }
        for c in pool where c.phase != .idle { finish(c, .failed("no answer before the deadline")) }
        let elapsed = Double(min(now(), hardEnd) - start) / 1e9
        return LoadReport(tally: tally, seconds: elapsed, cpuSeconds: processCPUSeconds() - cpuAtStart)
    }

    /// A request's bytes: request line, `Host`, the given headers, `Content-Length`, body.
    static func request(method: String, path: String, port: Int, headers: [(String, String)], body: [UInt8]) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nhost: 127.0.0.1:\(port)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "content-length: \(body.count)\r\n\r\n"
        return Array(text.utf8) + body
    }

    private enum Parsed {
        case incomplete
        case invalid(String)
        case complete(RawResponse, closeAfter: Bool)
    }

    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    private static func parse(_ input: [UInt8]) -> Parsed {
        guard input.count >= 4 else { return .incomplete }
        var headerEnd = -1
        for i in 0...(input.count - 4)
        where input[i] == 0x0D && input[i + 1] == 0x0A && input[i + 2] == 0x0D && input[i + 3] == 0x0A {
            headerEnd = i
            break
        }
        guard headerEnd >= 0 else { return input.count > 65_536 ? .invalid("header too large") : .incomplete }
        // Status line: HTTP/1.x NNN …
        guard headerEnd >= 12, input[0..<7].elementsEqual("HTTP/1.".utf8), input[8] == UInt8(ascii: " ") else {
            return .invalid("bad status line")
        }
        var status = 0
        for byte in input[9..<12] {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return .invalid("bad status line") }
            status = status * 10 + Int(byte - UInt8(ascii: "0"))
        }
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        var length: Int?
        var chunked = false
        var closeAfter = false
        var lineStart = (crlf(input, from: 0) ?? headerEnd) + 2
        while lineStart < headerEnd {
            let lineEnd = crlf(input, from: lineStart) ?? headerEnd
            guard let colon = input[lineStart..<lineEnd].firstIndex(of: UInt8(ascii: ":")) else { return .invalid("bad header line") }
            var valueStart = colon + 1
            while valueStart < lineEnd, input[valueStart] == 0x20 || input[valueStart] == 0x09 { valueStart += 1 }
            var valueEnd = lineEnd
            while valueEnd > valueStart, input[valueEnd - 1] == 0x20 || input[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            let name = lineStart..<colon
            fields.append((name, valueStart..<valueEnd))
            let lowered = input[name].map(lower)
            if lowered.elementsEqual("content-length".utf8) {
                length = Int(String(decoding: input[valueStart..<valueEnd], as: UTF8.self))
            } else if lowered.elementsEqual("transfer-encoding".utf8) {
                chunked = String(decoding: input[valueStart..<valueEnd], as: UTF8.self).lowercased().contains("chunked")
            } else if lowered.elementsEqual("connection".utf8) {
                closeAfter = String(decoding: input[valueStart..<valueEnd], as: UTF8.self).lowercased() == "close"
            }
            lineStart = lineEnd + 2
        }
        let head = input[0..<headerEnd]
        let bodyStart = headerEnd + 4
        if chunked {
            var body: [UInt8] = []
            var i = bodyStart
            while true {
                guard let lineEnd = crlf(input, from: i) else { return .incomplete }
                let sizeText = String(decoding: input[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText, radix: 16) else { return .invalid("bad chunk size") }
                i = lineEnd + 2
                if size == 0 {
                    guard input.count >= i + 2 else { return .incomplete }
                    return .complete(RawResponse(status: status, body: body, head: head, fields: fields), closeAfter: closeAfter)
                }
                guard input.count >= i + size + 2 else { return .incomplete }
                body.append(contentsOf: input[i..<(i + size)])
                i += size + 2
            }
        }
        guard let length else { return .invalid("no Content-Length") }
        guard input.count >= bodyStart + length else { return .incomplete }
        return .complete(
            RawResponse(status: status, body: Array(input[bodyStart..<(bodyStart + length)]), head: head, fields: fields),
            closeAfter: closeAfter)
    }

    private static func crlf(_ input: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < input.count {
            if input[i] == 0x0D && input[i + 1] == 0x0A { return i }
            i += 1
        }
        return nil
    }

    private static func connect(port: Int) throws -> Int32 {
        // Connected blocking (loopback connects at once), then switched to non-blocking.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port) failed")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    private static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
