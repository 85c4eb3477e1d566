import FeeReconCore
@testable import PortalGateway
import Testing

@Suite struct SettlementFileTests {
    let day = CivilDate(year: 2023, month: 5, day: 30)!
    let partner = PartnerCode(rawValue: "BTH")!
    let header = SettlementFileReader.header.joined(separator: ",")

    func row(_ reference: String, _ amount: Int64, fee: Int64? = nil, status: String = "00", kind: String = "THANHTOAN") -> String {
        let fees = kind == "THANHTOAN" ? "\(fee ?? amount / 3),\(amount - (fee ?? amount / 3))" : ","
        return "20230530,BTH,\(reference),000.00.15.H10-230530-0001,1.001234,PG\(reference),VCB,\(kind),20230530101500,20230531000000,\(amount),\(fees),VND,\(status),0123456789,VCB"
    }

    func read(_ text: String) async throws -> (rows: [SettlementRow], totals: (rowCount: Int, paymentTotal: Money, refundTotal: Money)) {
        var rows: [SettlementRow] = []
        let totals = try await SettlementFileReader(day: day, partner: partner).read(Array(text.utf8)) { rows.append($0) }
        return (rows, totals)
    }

    @Test func readsTheProtocolExample() async throws {
        let text = """
            \(header)
            20230530,BTH,PI7Q2K9X4M1N0B3V5C8Z,000.00.15.H10-230530-0001,1.001234,PG2305300000123,VCB,THANHTOAN,20230530101500,20230531000000,150000,50000,100000,VND,00,0123456789,VCB
            TONG,1,150000,0

            """
        let (rows, totals) = try await read(text)
        #expect(rows.count == 1)
        #expect(rows[0].reference == "PI7Q2K9X4M1N0B3V5C8Z")
        #expect(rows[0].amount == Money(dong: 150_000))
        #expect(rows[0].feeAmount == Money(dong: 50_000))
        #expect(rows[0].chargeAmount == Money(dong: 100_000))
        #expect(rows[0].status == .succeeded)
        #expect(rows[0].kind == .payment)
        #expect(rows[0].line == 2)
        #expect(totals.paymentTotal == Money(dong: 150_000))
    }

    @Test func totalsCountOnlySuccessfulRows() async throws {
        let text = [header, row("A1", 100_000), row("A2", 30_000, status: "02"), row("A3", 20_000, status: "04"),
                    row("R1", 10_000, kind: "HOANTIEN"), row("R2", 5_000, status: "09", kind: "HOANTIEN"),
                    "TONG,5,100000,10000", ""].joined(separator: "\n")
        let (rows, totals) = try await read(text)
        #expect(rows.map(\.status) == [.succeeded, .failed, .reversed, .succeeded, .refundRejected])
        #expect(totals.rowCount == 5)
        #expect(totals.refundTotal == Money(dong: 10_000))
    }

    @Test func emptyDay() async throws {
        let (rows, totals) = try await read(header + "\nTONG,0,0,0\n")
        #expect(rows.isEmpty)
        #expect(totals.rowCount == 0)
    }

    @Test(arguments: [
        ("TONG,1,149999,0", "payment total"),
        ("TONG,1,150001,0", "payment total"),
        ("TONG,2,150000,0", "rows"),
        ("TONG,1,150000,1", "refund total"),
    ])
    func trailerOffByOneIsRejected(trailer: String, mention: String) async {
        let text = [header, row("A1", 150_000), trailer, ""].joined(separator: "\n")
        await #expect {
            try await read(text)
        } throws: { error in
            guard let error = error as? GatewayError else { return false }
            return error.kind == .invalidSettlementFile && error.detail.contains(mention)
        }
    }

    @Test(arguments: [
        "missing final newline", "bom", "crlf", "no trailer", "after trailer", "wrong day", "wrong partner", "fee split",
        "float amount", "negative", "bad kind", "bad time", "bad posting time", "currency", "short row", "bad header",
    ])
    func malformedFilesAreRejected(kase: String) async {
        var lines = [header, row("A1", 150_000), "TONG,1,150000,0"]
        var suffix = "\n"
        var prefix = ""
        switch kase {
        case "missing final newline": suffix = ""
        case "bom": prefix = "\u{FEFF}"
        case "crlf": lines = lines.map { $0 + "\r" }
        case "no trailer": lines.removeLast()
        case "after trailer": lines.append(row("A2", 1))
        case "wrong day": lines[1] = lines[1].replacingOccurrences(of: "20230530,BTH", with: "20230529,BTH")
        case "wrong partner": lines[1] = lines[1].replacingOccurrences(of: ",BTH,", with: ",XYZ,")
        case "fee split": lines[1] = row("A1", 150_000).replacingOccurrences(of: ",50000,100000,", with: ",50000,99999,")
        case "float amount": lines[1] = lines[1].replacingOccurrences(of: ",150000,", with: ",150000.0,")
        case "negative": lines[1] = lines[1].replacingOccurrences(of: ",150000,", with: ",-150000,")
        case "bad kind": lines[1] = lines[1].replacingOccurrences(of: "THANHTOAN", with: "PAYMENT")
        case "bad time": lines[1] = lines[1].replacingOccurrences(of: "20230530101500", with: "20230530251500")
        case "bad posting time": lines[1] = lines[1].replacingOccurrences(of: "20230531000000", with: "20230530235959")
        case "currency": lines[1] = lines[1].replacingOccurrences(of: ",VND,", with: ",USD,")
        case "short row": lines[1] = "20230530,BTH,A1"
        case "bad header": lines[0] = lines[0].replacingOccurrences(of: "MaHoSo", with: "MaHS")
        default: Issue.record("unknown case")
        }
        let text = prefix + lines.joined(separator: "\n") + suffix
        await #expect(throws: GatewayError.self) { try await read(text) }
    }

    @Test func quotedFieldsAreAccepted() throws {
        let fields = try SettlementFileReader.fields(ArraySlice(Array(#"a,"b,c","d""e",,f"#.utf8)), line: 1)
        #expect(fields == ["a", "b,c", #"d"e"#, "", "f"])
    }
}

@Suite struct StrictJSONTests {
    @Test(arguments: [#"{"a":1}"#, #"{"a":-5,"b":[1,2,{"c":null}],"d":"x\"y","e":true,"f":false}"#, " [ ] ", #"{"SoTien":1000000000000}"#])
    func accepts(text: String) throws {
        try StrictJSON.validate(Array(text.utf8))
    }

    @Test(arguments: [
        #"{"SoTien":150000.0}"#, #"{"SoTien":1.5e5}"#, #"{"SoTien":1E3}"#, #"{"a":1,"a":2}"#, #"{"a":01}"#, #"{"a":1} x"#,
        #"{"a":}"#, #"{"a" 1}"#, #"{"a":"\#u{01}"}"#, "", #"{"a":tru}"#, #"[1,]"#,
    ])
    func rejects(text: String) {
        #expect(throws: StrictJSON.Violation.self) { try StrictJSON.validate(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: StrictJSON.Violation.self) { try StrictJSON.validate([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]) }
    }

    @Test func rejectsDeepNesting() {
        let text = String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect(throws: StrictJSON.Violation.self) { try StrictJSON.validate(Array(text.utf8)) }
    }
}
