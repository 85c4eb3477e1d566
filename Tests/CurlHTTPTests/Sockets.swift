#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A raw TCP socket on 127.0.0.1 for servers that misbehave on purpose: one that is bound but
/// not listening (connections are refused), one that listens but never answers, one whose
/// accept queue is full (connections hang in the handshake).
final class RawSocket: Sendable {
    let fd: Int32
    let port: Int

    /// Binds to an ephemeral loopback port; listens with `backlog` unless it is `nil`.
    init(listenBacklog backlog: Int32?) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw TestFailure("bind() failed")
        }
        if let backlog, listen(fd, backlog) != 0 {
            close(fd)
            throw TestFailure("listen() failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits until a connection arrives and accepts it, polling in short steps up to `deadline`.
    func accept(within timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 10) > 0 {
                let connection = acceptConnection(fd)
                if connection >= 0 { return connection }
            }
            await Task.yield()
        }
        throw TestFailure("no connection arrived in time")
    }

    /// A plain blocking connect to this socket's port, e.g. to fill a listen queue.
    func connectClient() throws -> Int32 {
        #if canImport(Glibc)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let client = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = Self.loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(client)
            throw TestFailure("connect() failed")
        }
        return client
    }

    deinit {
        close(fd)
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        return address
    }
}

/// Reads from `fd` until the peer closes it, polling in short steps up to `timeout`; `true` if it did.
func waitForPeerClose(_ fd: Int32, within timeout: Duration) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    var buffer = [UInt8](repeating: 0, count: 4096)
    while ContinuousClock.now < deadline {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&poller, 1, 10) > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return true }
        }
        await Task.yield()
    }
    return false
}

private func acceptConnection(_ fd: Int32) -> Int32 {
    accept(fd, nil, nil)
}
