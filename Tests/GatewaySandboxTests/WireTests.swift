import Cryptography
import NIOCore
@testable import GatewaySandbox
import Signing
import Testing

@Suite struct StrictJSONTests {
    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1,}"#, #"[1,]"#, #"{"a":01}"#, #"{"a":-}"#, #"{"a":1.}"#, #"{"a":.5}"#,
        #"{"a":1e}"#, #"{"a":"\u00"}"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00x"}"#, #"{"a":"x"} x"#, "{\"a\":\"\u{01}\"}",
        #"{"a":tru}"#, #"{'a':1}"#, #"{"a" 1}"#, "", " ", #"{"a":"\x"}"#, #"{"a":1e9999999}"#,
    ])
    func rejectsMalformedJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]) }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
    }

    @Test func canonicalFormIgnoresKeyOrderWhitespaceAndEscapes() throws {
        let a = try JSONValue.parse(Array(#"{"b":[1,{"y":"A","x":true}],"a":"é"}"#.utf8))
        let b = try JSONValue.parse(Array("{ \"a\" : \"\\u00e9\",\n \"b\" : [ 1 , { \"x\" : true , \"y\" : \"\\u0041\" } ] }".utf8))
        #expect(a.canonicalText == b.canonicalText)
        let c = try JSONValue.parse(Array(#"{"b":[1,{"y":"A","x":false}],"a":"é"}"#.utf8))
        #expect(a.canonicalText != c.canonicalText)
    }

    @Test func numbersKeepTheirIntegerness() throws {
        let integer = try JSONValue.parse(Array(#"{"n":150000}"#.utf8))
        let decimal = try JSONValue.parse(Array(#"{"n":150000.0}"#.utf8))
        let exponent = try JSONValue.parse(Array(#"{"n":1.5e5}"#.utf8))
        guard case .number(let i)? = integer["n"], case .number(let d)? = decimal["n"], case .number(let e)? = exponent["n"] else {
            Issue.record("numbers not parsed")
            return
        }
        #expect(i.int64 == 150_000)
        #expect(d.int64 == nil && e.int64 == nil)
        #expect(i.canonical == d.canonical && d.canonical == e.canonical)
        #expect(JSONNumber(literal: "-0.0", isIntegerLiteral: false).canonical == "0")
    }
}

@Suite struct CreateValidationTests {
    static func body(_ edit: (inout [String: String]) -> Void = { _ in }) -> [UInt8] {
        var fields: [String: String] = [
            "LoaiBanTin": #""KHOITAO""#, "PhienBan": #""1.0""#, "MaDoiTac": #""BTH""#, "MaThamChieu": #""PI7Q2K9X4M1N0B3V5C8Z""#,
            "SoTien": "150000", "MaTienTe": #""VND""#, "NgonNgu": #""vi""#, "ThoiGianGD": #""20230530101000""#,
            "Ip": #""203.0.113.7""#, "ThongTinGiaoDich": #""Thanh toan le phi ho so 000.00.15.H10-230530-0001""#,
            "UrlTraVe": #""https://service.example/pay/return""#, "UrlThongBao": #""https://service.example/v1/callbacks/portal""#,
            "ThongTinBienLai": receipt(),
        ]
        edit(&fields)
        return Array(("{" + fields.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}").utf8)
    }

    static func receipt(
        dossier: String = "000.00.15.H10-230530-0001", payer: String = "Nguyen Van A",
        lines: String = #"{"LoaiPhiLePhi":"2","MaPhiLePhi":"LP01","TenPhiLePhi":"Le phi","SoTien":100000},{"LoaiPhiLePhi":"1","MaPhiLePhi":"PH01","TenPhiLePhi":"Phi","SoTien":50000}"#
    ) -> String {
        #"{"MaHoSo":"\#(dossier)","MaTTHC":"1.001234","TenTTHC":"Cap ban sao trich luc","MaDonVi":"000.00.15.H10","TenDonVi":"So Tu phap","HoTenNguoiNop":"\#(payer)","PhiLePhi":[\#(lines)]}"#
    }

    static func rejection(_ body: [UInt8], partner: String = "BTH") -> ProtocolRejection? {
        do {
            _ = try WireParser.create(body, partner: partner)
            return nil
        } catch {
            return error
        }
    }

    @Test func acceptsTheDocumentedExample() throws {
        let request = try WireParser.create(Self.body(), partner: "BTH")
        #expect(request.amount == 150_000)
        #expect(request.feeAmount == 50_000 && request.chargeAmount == 100_000)
        #expect(request.requestedAt == WireTime.parse("20230530101000"))
        #expect(request.expiresAt == nil)
    }

    @Test(arguments: [
        ("SoTien", "150000.0"), ("SoTien", "1.5e5"), ("SoTien", #""150000""#), ("SoTien", "0"), ("SoTien", "-150000"),
        ("SoTien", "1000000000001"), ("MaThamChieu", #""PI7Q2K9X4M1N0B3V5C8ZX""#), ("MaThamChieu", #""PI-7""#),
        ("MaThamChieu", #""""#), ("ThoiGianGD", #""20230230101000""#), ("ThoiGianGD", #""2023053010100""#),
        ("LoaiBanTin", #""TRACUU""#), ("MaTienTe", #""USD""#), ("PhienBan", #""2.0""#), ("UrlThongBao", #""ftp://x/y""#),
        ("UrlTraVe", #""service.example/return""#), ("Ip", #""300.1.1.1""#), ("HanThanhToan", #""20230530101000""#),
        ("ThongTinGiaoDich", "\"" + String(repeating: "x", count: 256) + "\""), ("ThongTinBienLai", "[]"),
    ])
    func refusesMalformedFields(field: String, value: String) {
        let rejection = Self.rejection(Self.body { $0[field] = value })
        #expect(rejection?.code == .malformed, "\(field)=\(value)")
        #expect(rejection?.detail?.hasPrefix(field) == true)
    }

    @Test(arguments: ["MaThamChieu", "SoTien", "ThoiGianGD", "UrlThongBao", "UrlTraVe", "ThongTinBienLai", "Ip", "MaDoiTac"])
    func refusesMissingFields(field: String) {
        #expect(Self.rejection(Self.body { $0[field] = nil })?.code == .malformed)
    }

    @Test(arguments: [
        "000.00.15.H10-230530-0001", "G01.H10-240229-9999", "A.B-000101-0000",
    ])
    func acceptsDossierCodes(code: String) {
        #expect(WireParser.isDossierCode(code))
    }

    @Test(arguments: [
        "H10-230530-0001", "000.00.15.h10-230530-0001", "000..15.H10-230530-0001", "000.00.15.H10-230230-0001",
        "000.00.15.H10-231301-0001", "000.00.15.H10-250229-0001", "000.00.15.H10-230530-001", "000.00.15.H10_230530_0001",
        "000.00.15.H10-230530-0001-1", ".000.H10-230530-0001", "000.00.15.Ĥ10-230530-0001",
    ])
    func refusesDossierCodes(code: String) {
        #expect(!WireParser.isDossierCode(code))
        #expect(Self.rejection(Self.body { $0["ThongTinBienLai"] = Self.receipt(dossier: code) })?.detail == "ThongTinBienLai.MaHoSo")
    }

    @Test func namesAreCountedInUnicodeCharacters() {
        let longest = String(repeating: "Ệ", count: 200)
        #expect(Self.rejection(Self.body { $0["ThongTinBienLai"] = Self.receipt(payer: longest) }) == nil)
        let tooLong = String(repeating: "Ệ", count: 201)
        #expect(Self.rejection(Self.body { $0["ThongTinBienLai"] = Self.receipt(payer: tooLong) })?.code == .malformed)
    }

    @Test func feeLinesAreLimitedToFifty() {
        func lines(_ n: Int) -> String {
            (0..<n).map { #"{"LoaiPhiLePhi":"1","MaPhiLePhi":"P\#($0)","TenPhiLePhi":"Phi","SoTien":1000}"# }.joined(separator: ",")
        }
        #expect(Self.rejection(Self.body {
            $0["SoTien"] = "50000"
            $0["ThongTinBienLai"] = Self.receipt(lines: lines(50))
        }) == nil)
        #expect(Self.rejection(Self.body {
            $0["SoTien"] = "51000"
            $0["ThongTinBienLai"] = Self.receipt(lines: lines(51))
        })?.code == .malformed)
        #expect(Self.rejection(Self.body { $0["ThongTinBienLai"] = Self.receipt(lines: "") })?.code == .malformed)
    }

    @Test func amountMustBeTheSumOfTheLines() {
        #expect(Self.rejection(Self.body { $0["SoTien"] = "150001" })?.code == .amountMismatch)
        let float = #"{"LoaiPhiLePhi":"1","MaPhiLePhi":"PH01","TenPhiLePhi":"Phi","SoTien":150000.0}"#
        #expect(Self.rejection(Self.body { $0["ThongTinBienLai"] = Self.receipt(lines: float) })?.code == .malformed)
    }

    @Test func bodyPartnerMustMatchTheHeader() {
        #expect(Self.rejection(Self.body(), partner: "HNI")?.code == .invalidSignature)
    }

    @Test func ownDeadlineIsKept() throws {
        let request = try WireParser.create(Self.body { $0["HanThanhToan"] = #""20230530101100""# }, partner: "BTH")
        #expect(request.expiresAt == WireTime.parse("20230530101100"))
    }
}

@Suite struct WireTimeTests {
    @Test func vietnamTimeRoundTrips() {
        let t = WireTime.parse("20230530101500")!
        #expect(t == 1_685_416_500)
        #expect(WireTime.format(unixSeconds: t) == "20230530101500")
        #expect(WireTime.dayText(containing: WireTime.parse("20230530235959")!) == "20230530")
        #expect(WireTime.dayText(containing: WireTime.parse("20230531000000")!) == "20230531")
        #expect(WireTime.parseDay("20230530") == WireTime.parse("20230530000000"))
        #expect(WireTime.parse("20240229120000") != nil && WireTime.parse("20230229120000") == nil)
        #expect(WireTime.parse("20230530240000") == nil)
    }
}

@Suite struct CallbackBodyTests {
    /// PROTOCOL.md's test vector: the sandbox builds the same bytes and the same signature.
    @Test func matchesTheProtocolTestVector() throws {
        let payment = PaymentRecord(
            transactionID: "PG2305300000123", partner: "BTH", reference: "PI7Q2K9X4M1N0B3V5C8Z", request: "{}",
            amount: 150_000, feeAmount: 50_000, chargeAmount: 100_000, currency: "VND",
            description: "Thanh toan le phi ho so 000.00.15.H10-230530-0001", dossierCode: "000.00.15.H10-230530-0001",
            procedureCode: "1.001234", returnURL: "https://x/r", notifyURL: "https://x/n", bank: "VCB",
            requestedAt: 1_685_416_200, expiresAt: 1_685_417_100, createdMilliseconds: 0, status: .succeeded,
            outcome: .success, outcomeAt: 1_685_416_500, laterStatus: nil, laterAt: nil, timerMilliseconds: nil,
            timerEvent: nil, eventsSent: 1)
        let prefix = CallbackBody.payment(payment, code: .success, at: WireTime.parse("20230530101500")!, amount: 150_000)
        let body = CallbackBody.body(prefix: prefix, attempt: 1)
        let expected = #"{"LoaiBanTin":"KETQUA","MaLoi":"00","MaDoiTac":"BTH","MaThamChieu":"PI7Q2K9X4M1N0B3V5C8Z","MaGiaoDich":"PG2305300000123","SoTien":150000,"MaTienTe":"VND","MaNganHang":"VCB","ThoiGianGD":"20230530101500","ThongTinGiaoDich":"Thanh toan le phi ho so 000.00.15.H10-230530-0001","MaHoSo":"000.00.15.H10-230530-0001","LanGui":1}"#
        #expect(String(decoding: body, as: UTF8.self) == expected)
        let key = try WebhookSecret("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
        let signature = WebhookSigner(secret: key).signature(id: "evt_01H1Z6W1V0PQ3T", timestamp: 1_685_416_500, body: body)
        #expect(signature == "v1,b+v6TKbqUuwZpgHUbzM9s+Jb8zIyXAyMRLfRscrpxzA=")
        #expect(String(decoding: CallbackBody.body(prefix: prefix, attempt: 10), as: UTF8.self).hasSuffix(#","LanGui":10}"#))
    }

    @Test func corruptedSignaturesStayWellFormedButWrong() throws {
        let body = Array("{}".utf8)
        let signer = WebhookSigner(secret: TestKeys.current)
        let good = signer.signature(id: "cb_1", timestamp: 1_700_000_000, body: body)
        let bad = CallbackDispatcher.corrupt(good)
        #expect(bad != good && bad.hasPrefix("v1,"))
        let verifier = WebhookVerifier(secret: TestKeys.current, clock: { 1_700_000_000 })
        #expect(throws: WebhookVerificationError.noMatchingSignature) {
            try verifier.verify(id: "cb_1", timestamp: "1700000000", signature: bad, body: body)
        }
    }
}

@Suite struct StateMachineTests {
    @Test func everyEdgeIsWrittenDown() {
        typealias T = PaymentStateMachine.Transition
        for outcome in PaymentOutcome.allCases {
            let t = PaymentStateMachine.transition(from: .pending, firstOutcome: nil, on: .outcome(outcome))
            #expect(t == T(to: outcome.resultingStatus, callback: ResultCode(rawValue: outcome.rawValue)))
            for status in [PaymentStatus.succeeded, .failed, .reversed] {
                #expect(PaymentStateMachine.transition(from: status, firstOutcome: outcome, on: .outcome(.success)) == nil)
            }
        }
        #expect(PaymentStateMachine.transition(from: .succeeded, firstOutcome: .success, on: .reverseAfterSuccess) == T(to: .reversed, callback: nil))
        #expect(PaymentStateMachine.transition(from: .failed, firstOutcome: .expired, on: .lateSuccessAfterExpiry) == T(to: .succeeded, callback: .success))
        #expect(PaymentStateMachine.transition(from: .failed, firstOutcome: .cancelled, on: .lateSuccessAfterExpiry) == nil)
        #expect(PaymentStateMachine.transition(from: .pending, firstOutcome: nil, on: .reverseAfterSuccess) == nil)
        #expect(PaymentStateMachine.transition(from: .reversed, firstOutcome: .success, on: .lateSuccessAfterExpiry) == nil)
        #expect(PaymentOutcome.debitedReversed.resultingStatus.wireStatus == "04")
    }
}

@Suite struct SeededChoicesTests {
    @Test func sameSeedSameChoices() {
        let a = SeededChoices(seed: 42), b = SeededChoices(seed: 42), c = SeededChoices(seed: 43)
        let t = WireTime.parse("20230530101000")!
        #expect(a.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0)
            == b.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0))
        #expect(a.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0)
            != c.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0))
        #expect(a.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0).hasPrefix("PG230530"))
        #expect(a.transactionID(partner: "BTH", reference: "R1", requestedAt: t, salt: 0).count == 17)
        #expect(a.callbackID(partner: "BTH", subject: "PG1", event: "KETQUA-00-1") == b.callbackID(partner: "BTH", subject: "PG1", event: "KETQUA-00-1"))
        #expect(StandardWebhooks.isValidMessageID(a.callbackID(partner: "BTH", subject: "PG1", event: "KETQUA-00-1")))
    }

    @Test func ratesAreHonouredAndIndependentOfOrder() {
        let choices = SeededChoices(seed: 7)
        let references = (0..<2000).map { "R\($0)" }
        #expect(references.allSatisfy { choices.strikes(.drop, rate: 1, "BTH", $0) })
        #expect(references.allSatisfy { !choices.strikes(.drop, rate: 0, "BTH", $0) })
        let struck = references.filter { choices.strikes(.drop, rate: 0.25, "BTH", $0) }
        #expect((400...600).contains(struck.count))
        #expect(references.reversed().filter { choices.strikes(.drop, rate: 0.25, "BTH", $0) } == struck.reversed())
    }
}

@Suite struct SettlementFileTests {
    static let day = "20230530"
    static let start = WireTime.parseDay(day)!

    static func payment(_ ref: String, _ outcome: PaymentOutcome, at: String, later: (PaymentStatus, String)? = nil) -> SettlementPayment {
        SettlementPayment(
            reference: ref, transactionID: "PG" + ref, dossierCode: "000.00.15.H10-230530-0001", procedureCode: "1.001234",
            bank: "VCB", amount: 150_000, feeAmount: 50_000, chargeAmount: 100_000, currency: "VND", outcome: outcome,
            outcomeAt: WireTime.parse(at)!, laterStatus: later?.0, laterAt: later.map { WireTime.parse($0.1)! })
    }

    @Test func theDocumentedExampleRow() {
        let file = SettlementFile(
            day: Self.day, dayStart: Self.start, partner: "BTH", account: "0123456789", accountBank: "VCB",
            payments: [SettlementPayment(
                reference: "PI7Q2K9X4M1N0B3V5C8Z", transactionID: "PG2305300000123", dossierCode: "000.00.15.H10-230530-0001",
                procedureCode: "1.001234", bank: "VCB", amount: 150_000, feeAmount: 50_000, chargeAmount: 100_000,
                currency: "VND", outcome: .success, outcomeAt: WireTime.parse("20230530101500")!, laterStatus: nil, laterAt: nil)],
            refunds: [])
        let expected = """
            NgayDoiSoat,MaDoiTac,MaThamChieu,MaHoSo,MaTTHC,MaGiaoDich,MaNganHang,LoaiGiaoDich,ThoiGianGD,ThoiGianHachToan,SoTien,SoTienPhi,SoTienLePhi,MaTienTe,TrangThaiGD,TKThuHuong,MaNHThuHuong
            20230530,BTH,PI7Q2K9X4M1N0B3V5C8Z,000.00.15.H10-230530-0001,1.001234,PG2305300000123,VCB,THANHTOAN,20230530101500,20230531000000,150000,50000,100000,VND,00,0123456789,VCB
            TONG,1,150000,0

            """
        #expect(String(decoding: file.bytes, as: UTF8.self) == expected)
        #expect(file.bytes.first != 0xEF)
        #expect(!file.bytes.contains(0x0D))
    }

    @Test func aSameDayReversalIsOneRowAndANextDayReversalTwo() {
        let payments = [
            Self.payment("A", .success, at: "20230530090000", later: (.reversed, "20230530150000")),
            Self.payment("B", .success, at: "20230530120000", later: (.reversed, "20230531080000")),
            Self.payment("C", .expired, at: "20230530130000", later: (.succeeded, "20230530140000")),
        ]
        let day1 = SettlementFile(day: Self.day, dayStart: Self.start, partner: "BTH", account: "1", accountBank: "VCB", payments: payments, refunds: [])
        #expect(day1.rows.map(\.reference) == ["B", "C", "A"])
        #expect(day1.rows.map(\.status) == ["00", "00", "04"])
        #expect(day1.paymentTotal == 300_000)
        let day2 = SettlementFile(day: "20230531", dayStart: Self.start + 86_400, partner: "BTH", account: "1", accountBank: "VCB", payments: payments, refunds: [])
        #expect(day2.rows.map(\.reference) == ["B"])
        #expect(day2.rows.map(\.status) == ["04"])
        #expect(String(decoding: day2.bytes, as: UTF8.self).hasSuffix("TONG,1,0,0\n"))
    }

    @Test func refundRowsAndTheTrailer() {
        let refunds = [
            SettlementRefund(refundID: "HT1", reference: "A", dossierCode: "000.00.15.H10-230530-0001", procedureCode: "1.001234",
                             bank: "VCB", amount: 50_000, currency: "VND", status: .completed, outcomeAt: WireTime.parse("20230530160000")!),
            SettlementRefund(refundID: "HT2", reference: "A", dossierCode: "000.00.15.H10-230530-0001", procedureCode: "1.001234",
                             bank: "VCB", amount: 20_000, currency: "VND", status: .rejected, outcomeAt: WireTime.parse("20230530170000")!),
            SettlementRefund(refundID: "HT3", reference: "A", dossierCode: "000.00.15.H10-230530-0001", procedureCode: "1.001234",
                             bank: "VCB", amount: 20_000, currency: "VND", status: .pending, outcomeAt: WireTime.parse("20230530170000")!),
        ]
        var file = SettlementFile(day: Self.day, dayStart: Self.start, partner: "BTH", account: "1", accountBank: "VCB",
                                  payments: [Self.payment("A", .success, at: "20230530100000")], refunds: refunds)
        let text = String(decoding: file.bytes, as: UTF8.self)
        #expect(text.contains("\n20230530,BTH,A,000.00.15.H10-230530-0001,1.001234,HT1,VCB,HOANTIEN,20230530160000,20230531000000,50000,,,VND,00,1,VCB\n"))
        #expect(text.contains(",HT2,VCB,HOANTIEN,20230530170000,20230531000000,20000,,,VND,09,1,VCB\n"))
        #expect(!text.contains("HT3"))
        #expect(text.hasSuffix("TONG,3,150000,50000\n"))
        file.changeAmount(ofRowAt: 0, by: 1_000)
        #expect(file.rows[0].amount == 151_000 && file.rows[0].feeAmount! + file.rows[0].chargeAmount! == 151_000)
        #expect(String(decoding: file.bytes, as: UTF8.self).hasSuffix("TONG,3,151000,50000\n"))
    }

    @Test func anEmptyDay() {
        let file = SettlementFile(day: Self.day, dayStart: Self.start, partner: "BTH", account: "1", accountBank: "VCB", payments: [], refunds: [])
        #expect(String(decoding: file.bytes, as: UTF8.self) == SettlementFile.header + "\nTONG,0,0,0\n")
    }
}

@Suite struct ConfigurationTests {
    @Test func partnersParseWithoutShowingKeys() throws {
        let text = "BTH=\(TestKeys.current.exportedText),\(TestKeys.previous.exportedText)"
        let partner = try SandboxPartner(parsing: text)
        #expect(partner.code == "BTH" && partner.secrets.count == 2)
        #expect(!partner.description.contains("whsec_"))
        #expect(throws: SandboxConfigurationError.self) { try SandboxPartner(parsing: "BTH=whsec_short") }
        #expect(throws: SandboxConfigurationError.self) { try SandboxPartner(parsing: "bth lower=\(TestKeys.current.exportedText)") }
        do {
            _ = try SandboxPartner(parsing: "BTH=\(TestKeys.current.exportedText),not-a-key")
        } catch {
            #expect(!error.description.contains(TestKeys.current.exportedText))
        }
    }

    @Test func loopbackPeersOnly() throws {
        #expect(SandboxRequestContext.isLoopback(try .init(ipAddress: "127.0.0.1", port: 1)))
        #expect(SandboxRequestContext.isLoopback(try .init(ipAddress: "::1", port: 1)))
        #expect(!SandboxRequestContext.isLoopback(try .init(ipAddress: "10.0.0.7", port: 1)))
        #expect(!SandboxRequestContext.isLoopback(nil))
    }
}
