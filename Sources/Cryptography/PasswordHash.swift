import CLibCrypto

/// Password hashing with scrypt (libcrypto's `EVP_PBE_scrypt`), stored in PHC string format:
/// `$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>`. Verification reads the parameters from the
/// stored string, so they can be raised later without invalidating old hashes.
public enum PasswordHash {
    public struct Parameters: Sendable, Hashable {
        /// log2 of the CPU/memory cost N.
        public var logN: Int
        public var r: Int
        public var p: Int

        public init(logN: Int, r: Int, p: Int) {
            self.logN = logN
            self.r = r
            self.p = p
        }

        /// 2^15 × 8 × 128 bytes = 32 MiB and tens of milliseconds per hash.
        public static let interactive = Parameters(logN: 15, r: 8, p: 1)
    }

    private static let saltLength = 16
    private static let keyLength = 32

    public static func hash(password: String, parameters: Parameters = .interactive) -> String {
        let salt = SecureRandom.bytes(saltLength)
        guard let key = derive(password: password, salt: salt, parameters: parameters) else {
            preconditionFailure("libcrypto: scrypt failed with valid parameters")
        }
        return "$scrypt$ln=\(parameters.logN),r=\(parameters.r),p=\(parameters.p)$\(Base64.encode(salt))$\(Base64.encode(key))"
    }

    /// Whether `password` matches `stored`. A malformed stored string never matches.
    public static func verify(password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return false }
        var values: [String: Int] = [:]
        for field in parts[2].split(separator: ",") {
            let kv = field.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let v = Int(kv[1]) else { return false }
            values[String(kv[0])] = v
        }
        guard let logN = values["ln"], let r = values["r"], let p = values["p"],
              (1...20).contains(logN), (1...32).contains(r), (1...16).contains(p),
              let salt = Base64.decode(parts[3]), let expected = Base64.decode(parts[4]), expected.count == keyLength
        else { return false }
        guard let actual = derive(password: password, salt: salt, parameters: Parameters(logN: logN, r: r, p: p)) else {
            return false
        }
        return constantTimeEquals(actual, expected)
    }

    private static func derive(password: String, salt: [UInt8], parameters: Parameters) -> [UInt8]? {
        var key = [UInt8](repeating: 0, count: keyLength)
        let pass = Array(password.utf8)
        let n = UInt64(1) << UInt64(parameters.logN)
        let maxMemory = UInt64(129) * n * UInt64(parameters.r) * UInt64(parameters.p) + (1 << 20)
        let ok = pass.withUnsafeBufferPointer { passBytes in
            salt.withUnsafeBufferPointer { saltBytes in
                passBytes.withMemoryRebound(to: CChar.self) { passChars in
                    EVP_PBE_scrypt(
                        passChars.baseAddress, passChars.count, saltBytes.baseAddress, saltBytes.count,
                        n, UInt64(parameters.r), UInt64(parameters.p), maxMemory, &key, key.count)
                }
            }
        }
        return ok == 1 ? key : nil
    }
}
