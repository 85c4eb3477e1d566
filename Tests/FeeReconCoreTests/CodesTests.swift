import FeeReconCore
import Testing

@Suite struct DossierCodeTests {
    @Test(arguments: ["000.00.15.H10-230530-0001", "G01.H10-240229-9999", "A.B-000101-0000", "000.00.15.H10-991231-0001"])
    func acceptsValidCodes(text: String) throws {
        let code = try DossierCode(validating: text)
        #expect(code.rawValue == text)
        #expect(code.agency.rawValue == String(text.split(separator: "-")[0]))
    }

    @Test(arguments: [
        "", "000-230530-0001", "000.00.15.h10-230530-0001", "000..15.H10-230530-0001", ".000.H10-230530-0001",
        "000.00.15.H10-230530-001", "000.00.15.H10-2305300-0001", "000.00.15.H10_230530_0001",
        "000.00.15.H10-230230-0001", "000.00.15.H10-231301-0001", "000.00.15.H10-230000-0001",
        "000.00.15.H10-230229-0001", "000.00.15.H10-230530-0001-1", "000.00.15.H10 -230530-0001",
        "000.00.15.Ĥ10-230530-0001", "'; DROP TABLE dossiers; --",
    ])
    func rejectsInvalidCodes(text: String) {
        #expect(throws: ValidationError.self) { try DossierCode(validating: text) }
        #expect(DossierCode(rawValue: text) == nil)
    }

    @Test func leapDayIsReal() throws {
        _ = try DossierCode(validating: "000.00.15.H10-240229-0001")
        #expect(throws: ValidationError.self) { try DossierCode(validating: "000.00.15.H10-250229-0001") }
    }

    @Test func referencesAndPartners() {
        var rng = SystemRandomNumberGenerator()
        let reference = PaymentReference.random(using: &rng)
        #expect(reference.rawValue.count == 20)
        #expect(PaymentReference(rawValue: reference.rawValue) == reference)
        #expect(PaymentReference(rawValue: "PI7Q2K9X4M1N0B3V5C8Z") != nil)
        #expect(PaymentReference(rawValue: "PI7Q2K9X4M1N0B3V5C8ZX") == nil)
        #expect(PaymentReference(rawValue: "PI-1") == nil)
        #expect(PaymentReference(rawValue: "") == nil)
        #expect(RefundRequestID.random(using: &rng).rawValue.count == 24)
        #expect(PartnerCode(rawValue: "BTH") != nil)
        #expect(PartnerCode(rawValue: "B TH") == nil)
    }

    @Test func names() throws {
        try NameRule.validate("Nguyễn Văn Ánh", field: "applicantName")
        try NameRule.validate(String(repeating: "ệ", count: 200), field: "n")
        #expect(throws: ValidationError.self) { try NameRule.validate(String(repeating: "ệ", count: 201), field: "n") }
        #expect(throws: ValidationError.self) { try NameRule.validate("   ", field: "n") }
        #expect(throws: ValidationError.self) { try NameRule.validate("a\u{0}b", field: "n") }
        // Code points, as the gateway counts: 200 decomposed "é" are 400 characters.
        #expect(throws: ValidationError.self) { try NameRule.validate(String(repeating: "e\u{0301}", count: 200), field: "n") }
        try NameRule.validate(String(repeating: "e\u{0301}", count: 100), field: "n")
    }

    @Test func codes() throws {
        try NameRule.validateCode("1.001234", field: "c")
        try NameRule.validateCode("LP_01-a", field: "c")
        try NameRule.validateCode(String(repeating: "9", count: 50), field: "c")
        for bad in ["", "1.001234/2", "LP 01", "Lệ", String(repeating: "9", count: 51)] {
            #expect(throws: ValidationError.self, "\(bad)") { try NameRule.validateCode(bad, field: "c") }
        }
    }
}

@Suite struct MoneyTests {
    @Test(arguments: [
        (Int64(0), "0 ₫"), (5, "5 ₫"), (999, "999 ₫"), (1000, "1.000 ₫"), (150_000, "150.000 ₫"),
        (1_000_000_000_000, "1.000.000.000.000 ₫"), (-12_345, "-12.345 ₫"), (Int64.max, "9.223.372.036.854.775.807 ₫"),
    ])
    func formatsVietnamese(dong: Int64, text: String) {
        #expect(Money(dong: dong).formatted == text)
    }

    @Test func overflowIsReported() {
        #expect(Money(dong: .max).adding(Money(dong: 1)) == nil)
        #expect(Money.sum([Money(dong: .max), Money(dong: 1)]) == nil)
        #expect(Money.sum([Money(dong: 1), Money(dong: 2)]) == Money(dong: 3))
    }

    @Test func feeLineTotals() throws {
        let lines = [
            FeeLine(kind: .charge, code: "LP01", name: "Lệ phí", amount: Money(dong: 100_000)),
            FeeLine(kind: .fee, code: "PH01", name: "Phí", amount: Money(dong: 50_000)),
        ]
        #expect(try FeeLine.validatedTotal(of: lines) == Money(dong: 150_000))
        #expect(FeeLine.totals(of: lines) == [.fee: Money(dong: 50_000), .charge: Money(dong: 100_000)])
    }

    @Test(arguments: [Int64(0), -1, 1_000_000_000_001])
    func feeLineAmountBounds(dong: Int64) {
        let line = FeeLine(kind: .fee, code: "PH01", name: "Phí", amount: Money(dong: dong))
        #expect(throws: ValidationError(field: "feeLines[0].amount", reason: "must be a whole number of đồng from 1 to 1000000000000")) {
            try FeeLine.validatedTotal(of: [line])
        }
    }

    @Test func feeLineCountAndTotalBounds() {
        let line = FeeLine(kind: .fee, code: "PH01", name: "Phí", amount: Money(dong: 1))
        #expect(throws: ValidationError.self) { try FeeLine.validatedTotal(of: [] as [FeeLine]) }
        #expect(throws: ValidationError.self) { try FeeLine.validatedTotal(of: Array(repeating: line, count: 51)) }
        #expect((try? FeeLine.validatedTotal(of: Array(repeating: line, count: 50))) == Money(dong: 50))
        let big = FeeLine(kind: .fee, code: "PH01", name: "Phí", amount: Money(dong: 600_000_000_000))
        #expect(throws: ValidationError.self) { try FeeLine.validatedTotal(of: [big, big]) }
    }
}

@Suite struct VietnamTimeTests {
    @Test func formatsInUTCPlus7() {
        // 2023-05-30 03:15:00 UTC is 10:15:00 in Vietnam.
        let t = VietnamTime(unixSeconds: 1_685_416_500)
        #expect(t.compact == "20230530101500")
        #expect(t.date.compact == "20230530")
        #expect(VietnamTime(compact: "20230530101500") == t)
    }

    @Test func dayBoundaryIsVietnamMidnight() {
        // 2023-05-30 17:00:00 UTC is 2023-05-31 00:00:00 in Vietnam.
        let midnight = VietnamTime(unixSeconds: 1_685_466_000)
        #expect(midnight.compact == "20230531000000")
        #expect(midnight.adding(seconds: -1).date.compact == "20230530")
    }

    @Test(arguments: ["2023053010150", "202305301015000", "20230230101500", "20230530241500", "20230530106000", "2023053010150a"])
    func rejectsMalformed(text: String) {
        #expect(VietnamTime(compact: text) == nil)
    }

    @Test func civilDateRoundTripsOverCenturies() {
        for days in stride(from: Int64(-800_000), through: 2_900_000, by: 997) {
            let date = CivilDate(daysSinceEpoch: days)
            #expect(date.daysSinceEpoch == days)
            if date.daysSinceEpoch != days { return }
        }
        #expect(CivilDate("20240229")?.iso == "2024-02-29")
        #expect(CivilDate("2023-02-29") == nil)
        #expect(CivilDate(year: 2023, month: 12, day: 31)?.adding(days: 1).compact == "20240101")
    }
}
