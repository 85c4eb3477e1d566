import struct Foundation.Date
import struct Foundation.UUID

// MARK: - Date (timestamptz)

extension Date: PostgresEncodable, PostgresDecodable {
    /// Microseconds from 2000-01-01 (PostgreSQL's epoch) back to 2001-01-01 (Foundation's).
    static let postgresEpochOffset: Int64 = 31_622_400_000_000

    public static var postgresType: PostgresDataType { .timestamptz }

    /// Microseconds since PostgreSQL's epoch, rounded to the nearest microsecond.
    var postgresMicroseconds: Int64 {
        Int64((timeIntervalSinceReferenceDate * 1_000_000).rounded()) + Self.postgresEpochOffset
    }

    init(postgresMicroseconds: Int64) {
        self.init(timeIntervalSinceReferenceDate: Double(postgresMicroseconds - Self.postgresEpochOffset) / 1_000_000)
    }

    public func encode(into buffer: inout [UInt8]) {
        buffer.appendBigEndian(postgresMicroseconds)
    }

    /// ISO 8601 in UTC with microseconds, which every `DateStyle` parses the same way. Years
    /// 1–9999 only (four digits, no era); others are refused, as the binary format need not.
    public func encodeText(into buffer: inout [UInt8]) throws {
        let unixMicros = postgresMicroseconds + 946_684_800_000_000
        var days = unixMicros / 86_400_000_000
        var micros = unixMicros % 86_400_000_000
        if micros < 0 {
            micros += 86_400_000_000
            days -= 1
        }
        let (year, month, day) = Self.civil(fromDays: days)
        guard (1...9999).contains(year) else {
            throw PostgresError.encodingFailed(reason: "a timestamp outside the years 1–9999 in text format")
        }
        func pad(_ value: Int64, _ width: Int) {
            let digits = String(value)
            for _ in digits.utf8.count..<width { buffer.append(UInt8(ascii: "0")) }
            buffer.append(contentsOf: digits.utf8)
        }
        pad(year, 4)
        buffer.append(UInt8(ascii: "-"))
        pad(month, 2)
        buffer.append(UInt8(ascii: "-"))
        pad(day, 2)
        buffer.append(UInt8(ascii: " "))
        pad(micros / 3_600_000_000, 2)
        buffer.append(UInt8(ascii: ":"))
        pad(micros / 60_000_000 % 60, 2)
        buffer.append(UInt8(ascii: ":"))
        pad(micros / 1_000_000 % 60, 2)
        buffer.append(UInt8(ascii: "."))
        pad(micros % 1_000_000, 6)
        buffer.append(contentsOf: "+00".utf8)
    }

    /// Accepts timestamptz; `infinity` and `-infinity` become `distantFuture` and `distantPast`.
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        guard type == .timestamptz else { throw .typeMismatch }
        try bytes.requireLength(8)
        let micros = bytes.readBigEndian(Int64.self)
        switch micros {
        case .max: self = .distantFuture
        case .min: self = .distantPast
        default: self.init(postgresMicroseconds: micros)
        }
    }

    /// Proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's algorithm).
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

// MARK: - UUID

extension UUID: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresDataType { .uuid }

    public func encode(into buffer: inout [UInt8]) {
        withUnsafeBytes(of: uuid) { buffer.append(contentsOf: $0) }
    }

    public func encodeText(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: uuidString.lowercased().utf8)
    }

    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresDataType) throws(PostgresDecodingFailure) {
        guard type == .uuid else { throw .typeMismatch }
        try bytes.requireLength(16)
        var value: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: bytes) }
        self.init(uuid: value)
    }
}
