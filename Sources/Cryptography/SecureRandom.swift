import CLibCrypto
import Foundation

/// Cryptographically secure random bytes from libcrypto's DRBG.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0)
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        // A DRBG that cannot produce bytes leaves nothing safe to do but stop.
        precondition(ok == 1, "libcrypto: RAND_bytes failed")
        return out
    }

    /// A uniformly random string of `length` characters drawn from `alphabet`, which must be
    /// ASCII (rejection sampling, so no character is more likely than another).
    public static func string(length: Int, alphabet: [Character]) -> String {
        precondition(!alphabet.isEmpty && alphabet.count <= 256)
        let symbols = alphabet.map { character -> UInt8 in
            guard let ascii = character.asciiValue else { preconditionFailure("SecureRandom.string: ASCII alphabets only") }
            return ascii
        }
        let limit = 256 - (256 % symbols.count)
        var result: [UInt8] = []
        result.reserveCapacity(length)
        while result.count < length {
            // Twice what is missing: with at most half the bytes rejected, usually one round.
            for byte in bytes(max(16, (length - result.count) * 2)) where Int(byte) < limit {
                result.append(symbols[Int(byte) % symbols.count])
                if result.count == length { break }
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// `[A-Za-z0-9]`, the alphabet of the portal's references and of our tokens.
    public static let alphanumeric: [Character] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    /// Upper-case letters and digits without look-alikes (no I, L, O, U, 0, 1): Crockford base32.
    public static let crockford: [Character] = Array("23456789ABCDEFGHJKMNPQRSTVWXYZ")

    /// A random (version 4) UUID from libcrypto's DRBG. Foundation's `UUID()` opens and reads
    /// `/dev/urandom` for each one on Linux; this costs no system call.
    public static func uuid() -> UUID {
        var raw = bytes(16)
        raw[6] = (raw[6] & 0x0F) | 0x40  // version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(uuid: (
            raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
            raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]))
    }

    /// A URL-safe token carrying `bytes` bytes of entropy, for links and API keys.
    public static func token(bytes count: Int = 32) -> String {
        Base64.urlEncode(bytes(count))
    }
}
