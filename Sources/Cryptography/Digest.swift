import CLibCrypto

/// SHA-256 from the system's libcrypto, one-shot or streaming.
public struct SHA256: ~Copyable {
    public static let byteCount = 32

    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto: SHA-256 is unavailable")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1, "libcrypto: SHA-256 update failed")
    }

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        var bytes = Array(bytes)
        bytes.withUnsafeMutableBytes { update(UnsafeRawBufferPointer($0)) }
    }

    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &out, &length) == 1 && length == 32, "libcrypto: SHA-256 final failed")
        return out
    }

    /// The digest of `bytes` in one call.
    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Lower-case hexadecimal digest of `bytes`, e.g. for checksums stored as text.
    public static func hexDigest(_ bytes: some Sequence<UInt8>) -> String {
        Hex.encode(hash(bytes))
    }
}

/// HMAC-SHA256 from libcrypto's EVP_MAC interface, one-shot or streaming.
public struct HMACSHA256: ~Copyable {
    public static let byteCount = 32

    private let context: OpaquePointer

    public init(key: [UInt8]) {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { fatalError("libcrypto: HMAC is unavailable") }
        defer { EVP_MAC_free(mac) }
        guard let context = EVP_MAC_CTX_new(mac) else { fatalError("libcrypto: HMAC context allocation failed") }
        let ok = "SHA256".withCString { digestName -> Int32 in
            "digest".withCString { paramName -> Int32 in
                let name = UnsafeMutablePointer(mutating: digestName)
                var params = [
                    OSSL_PARAM_construct_utf8_string(paramName, name, 0),
                    OSSL_PARAM_construct_end(),
                ]
                // A zero-length key still needs a valid pointer.
                let buffer = key.isEmpty ? [0] : key
                return buffer.withUnsafeBufferPointer { EVP_MAC_init(context, $0.baseAddress, key.count, &params) }
            }
        }
        guard ok == 1 else { fatalError("libcrypto: HMAC-SHA256 init failed") }
        self.context = context
    }

    deinit { EVP_MAC_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        precondition(
            EVP_MAC_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count) == 1,
            "libcrypto: HMAC update failed")
    }

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { update($0) }
        }
    }

    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        var length = 0
        precondition(EVP_MAC_final(context, &out, &length, out.count) == 1 && length == 32, "libcrypto: HMAC final failed")
        return out
    }

    /// The authentication code of `message` under `key` in one call.
    public static func authenticationCode(key: [UInt8], message: some Sequence<UInt8>) -> [UInt8] {
        var mac = HMACSHA256(key: key)
        mac.update(message)
        return mac.finalize()
    }
}
