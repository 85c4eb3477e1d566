import CurlHTTP
import FeeReconCore
import Foundation
import Glibc
import Logging
import PortalGateway
import Signing
import TestSupport

enum PortalGatewayClientFactory {
    static func make(baseURL: String, partners: [PartnerCode: [WebhookSecret]], http: CurlHTTPClient, timeout: Duration) -> any PaymentGateway {
        PortalGatewayClient(
            configuration: PortalConfiguration(baseURL: baseURL, partners: partners, requestTimeout: timeout),
            http: http, logger: Logger.test("gateway"))
    }
}

/// A loopback socket that accepts connections (the kernel completes the handshake) and never
/// answers: a gateway that hangs.
final class SilentServer: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            Glibc.close(fd)
            throw TestSupportError("bind/listen failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        descriptor = fd
    }

    func close() { Glibc.close(descriptor) }
}
