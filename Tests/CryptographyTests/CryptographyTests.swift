import Foundation
import Cryptography
import Testing

@Suite struct DigestTests {
    @Test func sha256KnownVectors() {
        #expect(SHA256.hexDigest(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func sha256StreamingEqualsOneShot() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = SHA256()
        hasher.update(data[..<1234])
        hasher.update(data[1234...])
        #expect(hasher.finalize() == SHA256.hash(data))
    }

    /// RFC 4231 test cases 1 and 2.
    @Test func hmacSHA256RFC4231() {
        let key1 = [UInt8](repeating: 0x0b, count: 20)
        #expect(Hex.encode(HMACSHA256.authenticationCode(key: key1, message: Array("Hi There".utf8)))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(Hex.encode(HMACSHA256.authenticationCode(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hmacStreamingEqualsOneShot() {
        let key = SecureRandom.bytes(32)
        var mac = HMACSHA256(key: key)
        mac.update(Array("id.".utf8))
        mac.update(Array("123.".utf8))
        mac.update(Array("{}".utf8))
        #expect(mac.finalize() == HMACSHA256.authenticationCode(key: key, message: Array("id.123.{}".utf8)))
    }

    @Test func constantTimeCompare() {
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(constantTimeEquals([UInt8](), [UInt8]()))
    }
}

@Suite struct EncodingTests {
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ])
    func base64RFC4648(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test(arguments: ["Zg", "Zg=", "Z===", "Zh==", "Zm9v\n", "Zm 9v", "Zm9v====", "Zg==Zg==", "Zm-v"])
    func base64RejectsMalformed(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func hexRoundTrip() {
        let bytes: [UInt8] = [0, 1, 0xab, 0xff]
        #expect(Hex.encode(bytes) == "0001abff")
        #expect(Hex.decode("0001ABff") == bytes)
        #expect(Hex.decode("0g") == nil)
    }
}

@Suite struct RandomAndPasswordTests {
    @Test func randomBytesDiffer() {
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
        #expect(SecureRandom.bytes(0).isEmpty)
    }

    @Test func randomStringUsesAlphabet() {
        let s = SecureRandom.string(length: 200, alphabet: SecureRandom.crockford)
        #expect(s.count == 200)
        #expect(s.allSatisfy { SecureRandom.crockford.contains($0) })
        #expect(SecureRandom.string(length: 0, alphabet: SecureRandom.alphanumeric).isEmpty)
        // Three symbols: 255 of the 256 byte values are used, the last is rejected.
        let three = SecureRandom.string(length: 300, alphabet: "xyz")
        #expect(Set(three) == ["x", "y", "z"])
        #expect(!SecureRandom.alphanumeric.contains("é") && !SecureRandom.alphanumeric.contains("-"))
    }

    @Test func randomUUIDsAreVersion4AndDistinct() {
        let ids = (0..<1000).map { _ in SecureRandom.uuid() }
        #expect(Set(ids).count == 1000)
        for id in ids {
            let text = id.uuidString.lowercased()
            let version = text[text.index(text.startIndex, offsetBy: 14)]
            let variant = text[text.index(text.startIndex, offsetBy: 19)]
            #expect(version == "4")
            #expect("89ab".contains(variant))
        }
    }

    @Test func passwordHashVerifies() {
        let fast = PasswordHash.Parameters(logN: 10, r: 8, p: 1)
        let stored = PasswordHash.hash(password: "mật khẩu đúng", parameters: fast)
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(PasswordHash.verify(password: "mật khẩu đúng", against: stored))
        #expect(!PasswordHash.verify(password: "mật khẩu sai", against: stored))
        #expect(!PasswordHash.verify(password: "x", against: "$scrypt$garbage"))
        #expect(PasswordHash.hash(password: "a", parameters: fast) != PasswordHash.hash(password: "a", parameters: fast))
    }
}
