/// Why a code or name from outside was refused; `field` names the input, `reason` says what was wrong
/// in words a client developer can act on.
public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}

extension UInt8 {
    var isUpperAlphanumeric: Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self) || isDigit
    }
    var isAlphanumeric: Bool {
        isUpperAlphanumeric || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self)
    }
    var isDigit: Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) }
}

/// A government agency's code: dot-separated groups of `[A-Z0-9]`, at least two, e.g. `000.00.15.H10`.
public struct AgencyCode: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard (try? Self.validate(rawValue)) != nil else { return nil }
        self.rawValue = rawValue
    }

    public init(validating text: String, field: String = "agencyCode") throws(ValidationError) {
        try Self.validate(text, field: field)
        rawValue = text
    }

    static func validate(_ text: String, field: String = "agencyCode") throws(ValidationError) {
        let groups = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard text.utf8.count <= 64 else { throw ValidationError(field: field, reason: "is longer than 64 characters") }
        guard groups.count >= 2 else {
            throw ValidationError(field: field, reason: "must be at least two dot-separated groups of A-Z and 0-9, e.g. 000.00.15.H10")
        }
        for group in groups where group.isEmpty || !group.allSatisfy(\.isUpperAlphanumeric) {
            throw ValidationError(field: field, reason: "must be dot-separated groups of A-Z and 0-9, e.g. 000.00.15.H10")
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(validating: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// A procedure dossier's code, `<agency code>-<yyMMdd>-<nnnn>` (Circular 01/2018/TT-VPCP art. 19),
/// e.g. `000.00.15.H10-230530-0001`. The date must be a real calendar date.
public struct DossierCode: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public let agency: AgencyCode

    public init?(rawValue: String) {
        guard let code = try? Self(validating: rawValue) else { return nil }
        self = code
    }

    public init(validating text: String, field: String = "code") throws(ValidationError) {
        let format = "must look like <agency code>-<yyMMdd>-<nnnn>, e.g. 000.00.15.H10-230530-0001"
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw ValidationError(field: field, reason: format) }
        let agencyText = String(parts[0]), date = parts[1].utf8, serial = parts[2].utf8
        guard date.count == 6, date.allSatisfy(\.isDigit), serial.count == 4, serial.allSatisfy(\.isDigit) else {
            throw ValidationError(field: field, reason: format)
        }
        do {
            try AgencyCode.validate(agencyText, field: field)
        } catch {
            throw ValidationError(field: field, reason: format)
        }
        let digits = date.map { Int($0 - UInt8(ascii: "0")) }
        let year = 2000 + digits[0] * 10 + digits[1]
        let month = digits[2] * 10 + digits[3]
        let day = digits[4] * 10 + digits[5]
        guard CivilDate.isValid(year: year, month: month, day: day) else {
            throw ValidationError(field: field, reason: "contains \(parts[1]), which is not a real date (yyMMdd)")
        }
        rawValue = text
        agency = AgencyCode(uncheckedRawValue: agencyText)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(validating: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

extension AgencyCode {
    init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// An identifier of the portal's wire made of 1…`maximumLength` characters of `[A-Za-z0-9]`.
public protocol AlphanumericIdentifier: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible
where RawValue == String {
    static var maximumLength: Int { get }
    init(unchecked rawValue: String)
}

extension AlphanumericIdentifier {
    public init?(rawValue: String) {
        let bytes = rawValue.utf8
        guard (1...Self.maximumLength).contains(bytes.count), bytes.allSatisfy(\.isAlphanumeric) else { return nil }
        self.init(unchecked: rawValue)
    }

    public var description: String { rawValue }

    /// `prefix` and random characters of Crockford base32 up to `length`; with the lengths used
    /// here that is 88 bits or more, so a collision is practically impossible (the database's
    /// unique key is the guarantee).
    static func random(prefix: String, length: Int, using generator: inout some RandomNumberGenerator) -> Self {
        precondition(length <= maximumLength && prefix.utf8.allSatisfy { $0 < 0x80 })
        // 32 symbols: each is 5 bits of a 64-bit draw, so every symbol is equally likely and a
        // draw gives twelve of them.
        let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        var bytes = Array(prefix.utf8)
        var bits: UInt64 = 0
        var left = 0
        while bytes.count < length {
            if left == 0 {
                bits = generator.next()
                left = 12
            }
            bytes.append(alphabet[Int(bits & 31)])
            bits >>= 5
            left -= 1
        }
        return Self(unchecked: String(decoding: bytes, as: UTF8.self))
    }
}

/// The portal's partner code (`MaDoiTac`) of a province or agency system, e.g. `BTH`.
public struct PartnerCode: AlphanumericIdentifier {
    public static let maximumLength = 16
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// The service's own reference for one payment attempt (`MaThamChieu`): 1–20 of `[A-Za-z0-9]`,
/// unique per partner forever.
public struct PaymentReference: AlphanumericIdentifier {
    public static let maximumLength = 20
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }

    /// A fresh reference: `PI` and 18 random characters.
    public static func random(using generator: inout some RandomNumberGenerator) -> PaymentReference {
        random(prefix: "PI", length: 20, using: &generator)
    }
}

/// A refund request's id at the gateway (`MaYeuCau`): 1–32 of `[A-Za-z0-9]`, unique per partner.
public struct RefundRequestID: AlphanumericIdentifier {
    public static let maximumLength = 32
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }

    /// A fresh request id: `RF` and 22 random characters.
    public static func random(using generator: inout some RandomNumberGenerator) -> RefundRequestID {
        random(prefix: "RF", length: 24, using: &generator)
    }
}

/// Validation of free-text names (procedure, agency, applicant, fee line): 1–200 Unicode
/// characters, no control characters. "Characters" are code points, as the gateway counts them
/// (PROTOCOL.md, Clarifications): a name the dossier API accepts is one the gateway accepts, so
/// "é" written as `e` + combining accent counts two.
public enum NameRule {
    public static let maximumLength = 200

    public static func validate(_ text: String, field: String, maximum: Int = maximumLength) throws(ValidationError) {
        let trimmed = text.trimmingWhitespace
        guard !trimmed.isEmpty else { throw ValidationError(field: field, reason: "must not be empty") }
        let length = text.unicodeScalars.count
        guard length <= maximum else {
            throw ValidationError(field: field, reason: "must be at most \(maximum) Unicode characters (has \(length))")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValidationError(field: field, reason: "must not contain control characters")
        }
    }

    /// Short codes (procedure code, fee code): 1–50 characters of `[A-Za-z0-9._-]`, the gateway's
    /// rule for the codes it carries.
    public static func validateCode(_ text: String, field: String, maximum: Int = 50) throws(ValidationError) {
        let bytes = text.utf8
        guard (1...maximum).contains(bytes.count) else {
            throw ValidationError(field: field, reason: "must be 1–\(maximum) characters")
        }
        guard bytes.allSatisfy(isCodeByte) else {
            throw ValidationError(field: field, reason: "must contain only letters A–Z, a–z, digits, '.', '_' and '-'")
        }
    }

    private static func isCodeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}

extension String {
    var trimmingWhitespace: Substring {
        var s = self[...]
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return s
    }
}
