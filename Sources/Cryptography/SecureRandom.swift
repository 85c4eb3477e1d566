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

    /// The characters a random string is drawn from: at most 256 distinct ASCII characters,
    /// checked once when the alphabet is made rather than on every string drawn from it.
    public struct Alphabet: Sendable, ExpressibleByStringLiteral {
        /// The characters' ASCII codes, in order.
        public let symbols: [UInt8]

        public init(_ characters: String) {
            var seen = Set<UInt8>()
            symbols = characters.unicodeScalars.map { scalar -> UInt8 in
                guard scalar.isASCII else { preconditionFailure("SecureRandom.Alphabet: ASCII characters only") }
                return UInt8(scalar.value)
            }
            precondition(!symbols.isEmpty && symbols.count <= 256, "SecureRandom.Alphabet: 1 to 256 characters")
            precondition(symbols.allSatisfy { seen.insert($0).inserted }, "SecureRandom.Alphabet: each character once")
        }

        public init(stringLiteral value: String) { self.init(value) }

        public func contains(_ character: Character) -> Bool {
            character.asciiValue.map(symbols.contains) ?? false
        }
    }

    /// A uniformly random string of `length` characters drawn from `alphabet` (rejection
    /// sampling, so no character is more likely than another).
    public static func string(length: Int, alphabet: Alphabet) -> String {
        precondition(length >= 0)
        let symbols = alphabet.symbols
        let limit = 256 - (256 % symbols.count)
        return String(unsafeUninitializedCapacity: length) { output in
            var filled = 0
            while filled < length {
                // Twice what is missing: with at most half the bytes rejected, usually one round.
                for byte in bytes(max(16, (length - filled) * 2)) where Int(byte) < limit {
                    output[filled] = symbols[Int(byte) % symbols.count]
                    filled += 1
                    if filled == length { break }
                }
            }
            return length
        }
    }

    /// `[A-Za-z0-9]`, the alphabet of the portal's references and of our tokens.
    public static let alphanumeric: Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    /// Upper-case letters and digits without look-alikes (no I, L, O, U, 0, 1): Crockford base32.
    public static let crockford: Alphabet = "23456789ABCDEFGHJKMNPQRSTVWXYZ"

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
