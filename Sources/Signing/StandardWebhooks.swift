#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits and header names of the Standard Webhooks scheme as PROTOCOL.md uses it.
public enum StandardWebhooks {
    /// The largest body a receiver reads (64 KiB); a larger one is answered 413 before it is read.
    public static let maxBodySize = 65_536
    /// How far, in seconds, `webhook-timestamp` may be from the receiver's clock either way.
    public static let timestampTolerance: Int64 = 300
    /// The longest valid `webhook-id`.
    public static let maxMessageIDLength = 64

    public static let idHeader = "webhook-id"
    public static let timestampHeader = "webhook-timestamp"
    public static let signatureHeader = "webhook-signature"

    /// Whether `id` is 1–64 characters of `[A-Za-z0-9_-]`.
    public static func isValidMessageID(_ id: some StringProtocol) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= maxMessageIDLength else { return false }
        return utf8.allSatisfy(isMessageIDByte)
    }

    static func isMessageIDByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}

/// A source of the current time in whole Unix seconds, injectable so tests control the clock.
public typealias UnixClock = @Sendable () -> Int64

/// The system's wall clock in Unix seconds.
public let systemUnixClock: UnixClock = {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec)
}
