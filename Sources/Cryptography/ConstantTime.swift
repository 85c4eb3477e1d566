import CLibCrypto

/// Compares two byte strings in time that depends only on their lengths (libcrypto's
/// `CRYPTO_memcmp`). Use it for every comparison of a secret or a signature.
public func constantTimeEquals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
    let a = Array(lhs)
    let b = Array(rhs)
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
    }
}
