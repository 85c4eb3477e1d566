#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sandbox's own Vietnam-time arithmetic (UTC+07:00, no DST), kept apart from the service's
/// domain types so the two sides of the protocol stay independent.
enum WireTime {
    static let offsetSeconds: Int64 = 7 * 3600

    /// `yyyyMMddHHmmss` in Vietnam time for a Unix time in seconds.
    static func format(unixSeconds: Int64) -> String {
        let local = unixSeconds + offsetSeconds
        let days = floorDiv(local, 86_400)
        let second = local - days * 86_400
        let (y, m, d) = civil(fromDays: days)
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + pad(Int(second / 3600), 2) + pad(Int(second / 60 % 60), 2) + pad(Int(second % 60), 2)
    }

    /// Unix seconds of a `yyyyMMddHHmmss` Vietnam-time reading; nil unless it is a real date and time.
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count == 14, b.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let n = b.map { Int($0 - 0x30) }
        let year = n[0] * 1000 + n[1] * 100 + n[2] * 10 + n[3]
        let month = n[4] * 10 + n[5], day = n[6] * 10 + n[7]
        let hour = n[8] * 10 + n[9], minute = n[10] * 10 + n[11], second = n[12] * 10 + n[13]
        guard isValidDate(year: year, month: month, day: day), hour < 24, minute < 60, second < 60 else { return nil }
        return days(year: year, month: month, day: day) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - offsetSeconds
    }

    /// A Vietnam calendar day as `yyyyMMdd`, parsed into the Unix seconds of its 00:00:00.
    static func parseDay(_ text: some StringProtocol) -> Int64? {
        let b = Array(text.utf8)
        guard b.count == 8, b.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let n = b.map { Int($0 - 0x30) }
        let year = n[0] * 1000 + n[1] * 100 + n[2] * 10 + n[3]
        let month = n[4] * 10 + n[5], day = n[6] * 10 + n[7]
        guard year >= 1970, isValidDate(year: year, month: month, day: day) else { return nil }
        return days(year: year, month: month, day: day) * 86_400 - offsetSeconds
    }

    /// Unix seconds of 00:00:00 Vietnam time on the day containing `unixSeconds`.
    static func startOfDay(containing unixSeconds: Int64) -> Int64 {
        floorDiv(unixSeconds + offsetSeconds, 86_400) * 86_400 - offsetSeconds
    }

    /// `yyyyMMdd` of the Vietnam day containing `unixSeconds`.
    static func dayText(containing unixSeconds: Int64) -> String {
        String(format(unixSeconds: unixSeconds).prefix(8))
    }

    static func isValidDate(year: Int, month: Int, day: Int) -> Bool {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1 else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let length: Int = switch month {
        case 2: leap ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
        return day <= length
    }

    /// Days since 1970-01-01 (H. Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d))
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

/// The wall clock in milliseconds since the Unix epoch; injectable so tests and the scheduler
/// agree on "now".
public typealias SandboxClock = @Sendable () -> Int64

/// The system's wall clock in milliseconds.
public let systemSandboxClock: SandboxClock = {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
