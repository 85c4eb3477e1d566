/// A proleptic Gregorian calendar date, with the day-count arithmetic of H. Hinnant's
/// `days_from_civil`, so no time-zone database or formatter is involved.
public struct CivilDate: Hashable, Comparable, Sendable {
    public var year: Int
    public var month: Int
    public var day: Int

    public init?(year: Int, month: Int, day: Int) {
        guard Self.isValid(year: year, month: month, day: day) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    public static func isValid(year: Int, month: Int, day: Int) -> Bool {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1 else { return false }
        return day <= daysIn(month: month, year: year)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01.
    public var daysSinceEpoch: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public init(daysSinceEpoch days: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        year = Int(y)
        month = Int(m)
        day = Int(d)
    }

    public func adding(days: Int) -> CivilDate { CivilDate(daysSinceEpoch: daysSinceEpoch + Int64(days)) }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// `yyyyMMdd`, the settlement file's day format.
    public var compact: String { pad(year, 4) + pad(month, 2) + pad(day, 2) }

    /// `yyyy-MM-dd`.
    public var iso: String { pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) }

    /// Parses `yyyyMMdd` or `yyyy-MM-dd`.
    public init?(_ text: some StringProtocol) {
        let digits = text.utf8.filter { $0 != UInt8(ascii: "-") }
        guard digits.count == 8, digits.allSatisfy(\.isDigit),
              text.utf8.count == 8 || (text.utf8.count == 10 && Array(text.utf8)[4] == UInt8(ascii: "-") && Array(text.utf8)[7] == UInt8(ascii: "-"))
        else { return nil }
        let n = digits.map { Int($0 - UInt8(ascii: "0")) }
        self.init(year: n[0] * 1000 + n[1] * 100 + n[2] * 10 + n[3], month: n[4] * 10 + n[5], day: n[6] * 10 + n[7])
    }
}

func pad(_ value: Int, _ width: Int) -> String {
    let s = String(value)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// An instant expressed in Vietnam time (UTC+07:00, no daylight saving), the time zone of every
/// time on the portal's wire (`yyyyMMddHHmmss`) and of settlement days.
public struct VietnamTime: Hashable, Comparable, Sendable {
    public static let utcOffsetSeconds: Int64 = 7 * 3600

    /// Seconds since the Unix epoch.
    public var unixSeconds: Int64

    public init(unixSeconds: Int64) { self.unixSeconds = unixSeconds }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.unixSeconds < rhs.unixSeconds }

    private var localSeconds: Int64 { unixSeconds + Self.utcOffsetSeconds }

    /// The Vietnam calendar day of this instant — its settlement day.
    public var date: CivilDate {
        CivilDate(daysSinceEpoch: Self.floorDiv(localSeconds, 86_400))
    }

    /// Seconds since local midnight.
    public var secondOfDay: Int64 { localSeconds - Self.floorDiv(localSeconds, 86_400) * 86_400 }

    /// `yyyyMMddHHmmss` in Vietnam time.
    public var compact: String {
        let s = secondOfDay
        return date.compact + pad(Int(s / 3600), 2) + pad(Int(s / 60 % 60), 2) + pad(Int(s % 60), 2)
    }

    /// Parses `yyyyMMddHHmmss` in Vietnam time; refuses impossible dates and times.
    public init?(compact text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count == 14, bytes.allSatisfy(\.isDigit) else { return nil }
        let n = bytes.map { Int($0 - UInt8(ascii: "0")) }
        guard let date = CivilDate(year: n[0] * 1000 + n[1] * 100 + n[2] * 10 + n[3], month: n[4] * 10 + n[5], day: n[6] * 10 + n[7])
        else { return nil }
        let hour = n[8] * 10 + n[9], minute = n[10] * 10 + n[11], second = n[12] * 10 + n[13]
        guard hour < 24, minute < 60, second < 60 else { return nil }
        self.init(date: date, hour: hour, minute: minute, second: second)
    }

    /// The instant of a Vietnam-time wall clock reading.
    public init(date: CivilDate, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        unixSeconds = date.daysSinceEpoch * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Self.utcOffsetSeconds
    }

    public func adding(seconds: Int64) -> VietnamTime { VietnamTime(unixSeconds: unixSeconds + seconds) }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
