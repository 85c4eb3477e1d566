import Cryptography
import Signing
import Testing

/// PROTOCOL.md's test vector.
private enum Vector {
    static let secret = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
    static let id = "evt_01H1Z6W1V0PQ3T"
    static let timestamp: Int64 = 1_685_416_500
    static let body = Array(#"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","MaGiaoDich":"PG2305300000123","SoTien":150000,"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","ThongTinGiaoDich":"Thanh toan le phi ho so 000.00.15.H10-230530-0001","MaHoSo":"000.00.15.H10-230530-0001","LanGui":1}"#.utf8)
    static let signature = "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA="
}

/// Extra vectors computed with the public standardwebhooks library (Python, `Webhook.sign`).
private struct ExternalVector: Sendable, CustomTestStringConvertible {
    let name: String
    let secret: String
    let id: String
    let timestamp: Int64
    let body: String
    let signature: String
    var testDescription: String { name }

    static let all: [ExternalVector] = [
        ExternalVector(
            name: "24-byte key, empty body",
            secret: "whsec_oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3",
            id: "msg_2Qx9-_Zz", timestamp: 1_700_000_000, body: "",
            signature: "v1,e4WhXLSCHs0BCReO3Mthbl4ACMCCsCL4cv15tYdy7fk="),
        ExternalVector(
            name: "64-byte key, non-ASCII UTF-8 body",
            secret: "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vA==",
            id: "a", timestamp: 1, body: #"{"MaLoi":"00","MoTaLoi":"Thành công","TenDonVi":"Sở Tư pháp"}"#,
            signature: "v1,lvwdULU+X2pd5quNOFS89OM5jqb6vX/ryGkWOgLI9gY="),
        ExternalVector(
            name: "64-character id",
            secret: "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vA==",
            id: String(repeating: "x", count: 64), timestamp: 1_685_417_400,
            body: #"{"LoaiBanTin":"TRACUU","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","ThoiGianGD":"20230530103000"}"#,
            signature: "v1,MlLhQJNDEUjKP9Rd76VXUVICbvcuAkQO2Hm6TUYF9D4="),
    ]
}

private func fixedClock(_ seconds: Int64) -> UnixClock { { seconds } }

private func vectorSecret() throws -> WebhookSecret { try WebhookSecret(Vector.secret) }

@Suite struct WebhookSecretTests {
    @Test func parsesProtocolKey() throws {
        let secret = try vectorSecret()
        #expect(secret.exportedText == Vector.secret)
    }

    @Test(arguments: [
        ("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", WebhookSecretError.missingPrefix),
        ("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA", .invalidBase64),
        ("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n", .invalidBase64),
        ("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH-A=", .invalidBase64),
        ("whsec_", .invalidKeyLength),
        ("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhc=", .invalidKeyLength),
        ("whsec_" + Base64.encode([UInt8](repeating: 7, count: 65)), .invalidKeyLength),
        ("WHSEC_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", .missingPrefix),
    ])
    func rejectsMalformed(text: String, expected: WebhookSecretError) {
        #expect(throws: expected) { try WebhookSecret(text) }
    }

    @Test func acceptsKeyLengthBounds() throws {
        _ = try WebhookSecret("whsec_" + Base64.encode([UInt8](repeating: 1, count: 24)))
        _ = try WebhookSecret("whsec_" + Base64.encode([UInt8](repeating: 1, count: 64)))
    }

    @Test func neverShowsKey() throws {
        let secret = try vectorSecret()
        let body = String(Vector.secret.dropFirst(6))
        for text in [String(describing: secret), String(reflecting: secret), "\(secret)", dumped(secret)] {
            #expect(!text.contains(body))
            #expect(!text.contains("AQID"))
        }
        #expect(!String(describing: WebhookSecretError.invalidBase64).contains("whsec_A"))
    }

    @Test func generatedSecretsDifferAndRoundTrip() throws {
        let a = WebhookSecret.generate()
        let b = WebhookSecret.generate()
        #expect(a.exportedText != b.exportedText)
        #expect(try WebhookSecret(a.exportedText).exportedText == a.exportedText)
    }

    private func dumped(_ value: some Any) -> String {
        var out = ""
        dump(value, to: &out)
        return out
    }
}

@Suite struct WebhookSigningTests {
    @Test func protocolVector() throws {
        let signer = WebhookSigner(secret: try vectorSecret())
        #expect(signer.signature(id: Vector.id, timestamp: Vector.timestamp, body: Vector.body) == Vector.signature)
    }

    @Test func protocolVectorVerifies() throws {
        let verifier = WebhookVerifier(secret: try vectorSecret(), clock: fixedClock(Vector.timestamp + 10))
        let verified = try verifier.verify(
            id: Vector.id, timestamp: String(Vector.timestamp), signature: Vector.signature, body: Vector.body)
        #expect(verified == VerifiedWebhook(id: Vector.id, timestamp: Vector.timestamp, keyIndex: 0))
    }

    @Test(arguments: ExternalVector.all)
    fileprivate func externalVectors(vector: ExternalVector) throws {
        let secret = try WebhookSecret(vector.secret)
        let body = Array(vector.body.utf8)
        #expect(WebhookSigner(secret: secret).signature(id: vector.id, timestamp: vector.timestamp, body: body) == vector.signature)
        let verifier = WebhookVerifier(secret: secret, clock: fixedClock(vector.timestamp))
        _ = try verifier.verify(id: vector.id, timestamp: String(vector.timestamp), signature: vector.signature, body: body)
    }

    @Test func emptyBodyIsSignedOverIDAndTimestamp() throws {
        let secret = try vectorSecret()
        let signature = WebhookSigner(secret: secret).signature(id: "msg_1", timestamp: 1_685_491_200, body: [UInt8]())
        let expected = HMACSHA256.authenticationCode(key: Array(1...32), message: Array("msg_1.1685491200.".utf8))
        #expect(signature == "v1," + Base64.encode(expected))
        // The settlement GET, computed with the public standardwebhooks library.
        #expect(WebhookSigner(secret: secret).signature(id: "msg_settlement_20230530", timestamp: 1_685_491_200, body: [UInt8]())
            == "v1,Alrv9T9Fpp2a4aZiCN6O0mwQtEDbwfNhyDA8yZatjSw=")
    }

    @Test func headersRoundTrip() throws {
        let secret = WebhookSecret.generate()
        let now: Int64 = 1_800_000_000
        let headers = WebhookSigner(secret: secret, clock: fixedClock(now)).headers(for: Vector.body)
        #expect(headers.timestamp == now)
        #expect(headers.id.hasPrefix("msg_") && StandardWebhooks.isValidMessageID(headers.id))
        #expect(headers.fields.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        let lookup = Dictionary(uniqueKeysWithValues: headers.fields.map { ($0.name, $0.value) })
        let verified = try WebhookVerifier(secret: secret, clock: fixedClock(now)).verify(headers: { lookup[$0] }, body: Vector.body)
        #expect(verified.id == headers.id)
    }

    @Test func freshIDsAreUniqueAndValid() {
        let ids = (0..<1000).map { _ in WebhookSigner.newMessageID() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { StandardWebhooks.isValidMessageID($0) })
    }

    @Test func keepsGivenIDForRetries() throws {
        let signer = WebhookSigner(secret: WebhookSecret.generate())
        #expect(signer.headers(for: Vector.body, id: "evt_same").id == "evt_same")
    }

    @Test func signsWithEveryKeyDuringRotation() throws {
        let old = WebhookSecret.generate()
        let new = WebhookSecret.generate()
        let signature = WebhookSigner(secrets: [old, new]).signature(id: "m", timestamp: 5, body: Vector.body)
        let entries = signature.split(separator: " ", omittingEmptySubsequences: false)
        #expect(entries.count == 2)
        #expect(entries[0] == WebhookSigner(secret: old).signature(id: "m", timestamp: 5, body: Vector.body))
        #expect(entries[1] == WebhookSigner(secret: new).signature(id: "m", timestamp: 5, body: Vector.body))
        for secret in [old, new] {
            _ = try WebhookVerifier(secret: secret, clock: fixedClock(5)).verify(id: "m", timestamp: "5", signature: signature, body: Vector.body)
        }
    }

    @Test func verifiesBufferPointersAndSlicesWithoutCopyingSemantics() throws {
        let verifier = WebhookVerifier(secret: try vectorSecret(), clock: fixedClock(Vector.timestamp))
        let padded = [0xFF] + Vector.body + [0xFF]
        _ = try verifier.verify(id: Vector.id, timestamp: String(Vector.timestamp), signature: Vector.signature, body: padded[1..<padded.count - 1])
        try Vector.body.withUnsafeBytes { raw in
            _ = try verifier.verify(id: Vector.id, timestamp: String(Vector.timestamp), signature: Vector.signature, body: raw)
        }
    }
}

@Suite struct WebhookVerificationTests {
    private let now = Vector.timestamp
    private var timestamp: String { String(Vector.timestamp) }

    private func verifier(_ secrets: [WebhookSecret]? = nil, now: Int64? = nil) throws -> WebhookVerifier {
        WebhookVerifier(secrets: try secrets ?? [vectorSecret()], clock: fixedClock(now ?? self.now))
    }

    private func expectRejected(
        _ expected: WebhookVerificationError,
        id: String? = Vector.id, timestamp: String? = String(Vector.timestamp), signature: String? = Vector.signature,
        body: [UInt8] = Vector.body, now: Int64? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let verifier = try verifier(now: now)
        #expect(throws: expected, sourceLocation: sourceLocation) {
            try verifier.verify(id: id, timestamp: timestamp, signature: signature, body: body)
        }
    }

    @Test func wrongKey() throws {
        let verifier = try verifier([WebhookSecret.generate()])
        #expect(throws: WebhookVerificationError.noMatchingSignature) {
            try verifier.verify(id: Vector.id, timestamp: timestamp, signature: Vector.signature, body: Vector.body)
        }
    }

    @Test func noKeysMatchesNothing() throws {
        let verifier = try verifier([])
        #expect(throws: WebhookVerificationError.noMatchingSignature) {
            try verifier.verify(id: Vector.id, timestamp: timestamp, signature: Vector.signature, body: Vector.body)
        }
    }

    @Test func secondKeyDuringRotation() throws {
        let verified = try verifier([WebhookSecret.generate(), vectorSecret()])
            .verify(id: Vector.id, timestamp: timestamp, signature: Vector.signature, body: Vector.body)
        #expect(verified.keyIndex == 1)
    }

    @Test func twoEntriesOneMatching() throws {
        let other = WebhookSigner(secret: WebhookSecret.generate()).signature(id: Vector.id, timestamp: now, body: Vector.body)
        for header in ["\(other) \(Vector.signature)", "\(Vector.signature) \(other)"] {
            _ = try verifier().verify(id: Vector.id, timestamp: timestamp, signature: header, body: Vector.body)
        }
    }

    /// A `v1` entry that is base64 of another length than a MAC matches no key; it does not spoil
    /// an entry that matches (as the `standardwebhooks` library behaves), and alone it is a
    /// signature that does not match. The same for other versions with an empty value.
    @Test func entriesThatCannotMatchDoNotSpoilOneThatDoes() throws {
        for header in ["v1,AAAA \(Vector.signature)", "\(Vector.signature) v1,AAAA", "v2, \(Vector.signature)"] {
            _ = try verifier().verify(id: Vector.id, timestamp: timestamp, signature: header, body: Vector.body)
        }
        try expectRejected(.noMatchingSignature, signature: "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrp")  // 30 bytes
        try expectRejected(.noMatchingSignature, signature: "v1,AAAA v2,")
    }

    @Test func otherVersionsAreIgnored() throws {
        _ = try verifier().verify(
            id: Vector.id, timestamp: timestamp, signature: "v1a,c29tZXRoaW5nIGVsc2U= v2,zzz \(Vector.signature)", body: Vector.body)
        try expectRejected(.noMatchingSignature, signature: "v1a,\(Vector.signature.dropFirst(3)) v2,abc")
    }

    @Test func tamperedBody() throws {
        var body = Vector.body
        body[body.count - 2] = UInt8(ascii: "2")
        try expectRejected(.noMatchingSignature, body: body)
    }

    @Test func signatureBoundToIDAndTimestamp() throws {
        try expectRejected(.noMatchingSignature, id: "evt_01H1Z6W1V0PQ3U")
        try expectRejected(.noMatchingSignature, timestamp: String(now + 1))
    }

    @Test func timestampWindow() throws {
        _ = try verifier(now: now + 300).verify(id: Vector.id, timestamp: timestamp, signature: Vector.signature, body: Vector.body)
        _ = try verifier(now: now - 300).verify(id: Vector.id, timestamp: timestamp, signature: Vector.signature, body: Vector.body)
        try expectRejected(.timestampTooOld, now: now + 301)
        try expectRejected(.timestampTooNew, now: now - 301)
        try expectRejected(.timestampTooNew, timestamp: "9223372036854775807", now: 0)
    }

    @Test(arguments: ["1685416500.9", "1685416500 ", " 1685416500", "+1685416500", "-1685416500", "01685416500",
                      "1685416500a", "0x6475B634", "١٦٨٥٤١٦٥٠٠", "99999999999999999999", "9223372036854775808"])
    func malformedTimestamp(text: String) throws {
        try expectRejected(.malformedTimestamp, timestamp: text)
    }

    @Test func missingOrEmptyHeaders() throws {
        try expectRejected(.missingMessageID, id: nil)
        try expectRejected(.missingMessageID, id: "")
        try expectRejected(.missingTimestamp, timestamp: nil)
        try expectRejected(.missingTimestamp, timestamp: "")
        try expectRejected(.missingSignature, signature: nil)
        try expectRejected(.missingSignature, signature: "")
        #expect(WebhookVerificationError.missingSignature.isMissingHeader)
        #expect(!WebhookVerificationError.malformedSignature.isMissingHeader)
    }

    @Test(arguments: ["evt 1", "evt.1", "evt/1", "évt1", "evt_1\n", String(repeating: "a", count: 65)])
    func invalidMessageID(id: String) throws {
        try expectRejected(.invalidMessageID, id: id)
    }

    @Test func sixtyFourCharacterIDAccepted() throws {
        let id = String(repeating: "A", count: 63) + "-"
        let signature = WebhookSigner(secret: try vectorSecret()).signature(id: id, timestamp: now, body: Vector.body)
        _ = try verifier().verify(id: id, timestamp: timestamp, signature: signature, body: Vector.body)
    }

    @Test(arguments: [
        "v1b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",                // no comma
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA",                // truncated: not base64 any more
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=AA==",           // too long
        "v1,b-v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",               // URL-safe alphabet
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzB=",               // stray bits before padding
        "v1,",                                                           // empty signature
        ",b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",                 // empty version
        " v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",              // leading space
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA= ",              // trailing space
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=  v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=", // doubled space
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA= v1,!!!!",       // one valid entry, one malformed
        "v2 v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=",            // other-version entry without a comma
        " ",
        "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=\tv1,AAAA",      // tab is not a separator
    ])
    func malformedSignatureHeader(header: String) throws {
        try expectRejected(.malformedSignature, signature: header)
    }

    @Test func bodySizeCap() throws {
        let limit = StandardWebhooks.maxBodySize
        #expect(limit == 64 * 1024)
        try expectRejected(.bodyTooLarge, body: [UInt8](repeating: 0x20, count: 65 * 1024))
        try expectRejected(.bodyTooLarge, body: [UInt8](repeating: 0x20, count: limit + 1))
        let body = [UInt8](repeating: 0x20, count: limit)
        let signature = WebhookSigner(secret: try vectorSecret()).signature(id: Vector.id, timestamp: now, body: body)
        _ = try verifier().verify(id: Vector.id, timestamp: timestamp, signature: signature, body: body)
    }

    @Test func bodySizeIsCheckedBeforeHeaders() throws {
        try expectRejected(.bodyTooLarge, id: nil, timestamp: nil, signature: nil, body: [UInt8](repeating: 0, count: 70_000))
    }

    @Test func codesAreStableAndDescriptionsLeakNothing() {
        let all: [WebhookVerificationError] = [
            .missingMessageID, .missingTimestamp, .missingSignature, .invalidMessageID, .malformedTimestamp,
            .timestampTooOld, .timestampTooNew, .malformedSignature, .noMatchingSignature, .bodyTooLarge,
        ]
        #expect(Set(all.map(\.code)) == [
            "missing_header", "invalid_message_id", "malformed_timestamp", "timestamp_too_old", "timestamp_too_new",
            "malformed_signature", "no_matching_signature", "body_too_large",
        ])
        for error in all {
            #expect(!error.description.contains("v1,"))
            #expect(!error.description.contains("whsec"))
        }
        #expect(WebhookVerificationError.missingTimestamp.description.contains("webhook-timestamp"))
    }
}
