import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore

/// §2, the hosted payment page: the payer sees what they pay and picks an outcome; the browser is
/// then sent to `UrlTraVe?MaThamChieu=…&MaLoi=…`. Plain HTML forms, no script; values are escaped
/// by the templates.
struct PaymentPage: Sendable {
    let engine: SandboxEngine
    let library: MustacheLibrary

    init(engine: SandboxEngine) throws {
        self.engine = engine
        var library = MustacheLibrary()
        try library.register(PaymentTemplates.layout, named: "layout")
        try library.register(PaymentTemplates.payment, named: "payment")
        try library.register(PaymentTemplates.message, named: "message")
        self.library = library
    }

    func register(on router: Router<SandboxRequestContext>) {
        let group = router.group(RouterPath(ProtocolRoutes.basePath))
        group.get("thanh-toan/:id") { _, context in
            await engine.stats.measure("page") {
                await self.show(transactionID: context.parameters.get("id") ?? "", logger: context.logger)
            }
        }
        group.post("thanh-toan/:id") { request, context in
            await engine.stats.measure("page-choice") {
                await self.choose(request, transactionID: context.parameters.get("id") ?? "", logger: context.logger)
            }
        }
    }

    private func show(transactionID: String, logger: Logger) async -> Response {
        do {
            guard WireParser.isAlphanumeric(transactionID, maxLength: 40),
                  let payment = try await engine.store.payment(transactionID: transactionID)
            else { return message(status: 404, title: "Không tìm thấy giao dịch", text: "Mã giao dịch không tồn tại.") }
            let now = engine.clock()
            var view: [String: Any] = [
                "title": "Thanh toán " + payment.transactionID,
                "transactionID": payment.transactionID,
                "reference": payment.reference,
                "amount": Self.formatDong(payment.amount),
                "description": payment.description,
                "dossierCode": payment.dossierCode,
                "deadline": Self.display(payment.expiresAt),
            ]
            if let request = try? JSONValue.parse(Array(payment.request.utf8)), let receipt = request["ThongTinBienLai"] {
                view["procedureName"] = receipt["TenTTHC"]?.stringValue ?? ""
                view["agencyName"] = receipt["TenDonVi"]?.stringValue ?? ""
                view["payerName"] = receipt["HoTenNguoiNop"]?.stringValue ?? ""
                if case .array(let lines)? = receipt["PhiLePhi"] {
                    view["hasLines"] = !lines.isEmpty
                    view["lines"] = lines.map { line -> [String: Any] in
                        let amount: Int64 = if case .number(let n)? = line["SoTien"] { n.int64 ?? 0 } else { 0 }
                        return [
                            "name": line["TenPhiLePhi"]?.stringValue ?? "",
                            "kind": line["LoaiPhiLePhi"]?.stringValue == "1" ? "Phí" : "Lệ phí",
                            "amount": Self.formatDong(amount),
                        ]
                    }
                }
            }
            if payment.status == .pending, now < payment.expiresAt * 1000 {
                view["pending"] = true
                view["outcomes"] = Self.buttons
            } else {
                let code = Self.returnCode(of: payment, now: now)
                view["result"] = Self.resultText(code)
                view["returnLink"] = Self.returnURL(payment, code: code)
            }
            return page("payment", view, status: 200)
        } catch {
            logger.error("payment page failed", metadata: ["error": "\(error)"])
            return message(status: 500, title: "Lỗi hệ thống", text: "Vui lòng thử lại sau.")
        }
    }

    private func choose(_ request: Request, transactionID: String, logger: Logger) async -> Response {
        do {
            var request = request
            let form = try await request.collectBody(upTo: 4096)
            let fields = Self.parseForm(String(buffer: form))
            guard WireParser.isAlphanumeric(transactionID, maxLength: 40) else {
                return message(status: 404, title: "Không tìm thấy giao dịch", text: "Mã giao dịch không tồn tại.")
            }
            guard let choice = fields["KetQua"].flatMap(PaymentOutcome.init(rawValue:)) else {
                return message(status: 400, title: "Lựa chọn không hợp lệ", text: "Vui lòng chọn lại.")
            }
            let payment: PaymentRecord
            switch try await engine.choose(choice, transactionID: transactionID) {
            case .applied(let record), .refused(let record): payment = record
            case .notFound: return message(status: 404, title: "Không tìm thấy giao dịch", text: "Mã giao dịch không tồn tại.")
            }
            let code = Self.returnCode(of: payment, now: engine.clock())
            var headers = HTTPFields()
            headers[.location] = Self.returnURL(payment, code: code)
            headers[.cacheControl] = "no-store"
            return Response(status: .seeOther, headers: headers)
        } catch {
            logger.error("payment choice failed", metadata: ["error": "\(error)"])
            return message(status: 400, title: "Yêu cầu không hợp lệ", text: "Vui lòng thử lại.")
        }
    }

    private func page(_ name: String, _ view: [String: Any], status: Int) -> Response {
        let body = library.render(view, withTemplate: name) ?? ""
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        return .bytes(Array(body.utf8), status: status, contentType: "text/html; charset=utf-8", headers: headers)
    }

    private func message(status: Int, title: String, text: String) -> Response {
        page("message", ["title": title, "text": text], status: status)
    }

    static var buttons: [[String: Any]] { [
        ["code": "00", "label": "Thanh toán thành công", "style": "primary"],
        ["code": "24", "label": "Hủy giao dịch", "style": "plain"],
        ["code": "51", "label": "Tài khoản không đủ số dư", "style": "plain"],
        ["code": "11", "label": "Hết thời gian thanh toán", "style": "plain"],
        ["code": "07", "label": "Đã trừ tiền, bị đảo (nghi ngờ gian lận)", "style": "plain"],
    ] }

    /// The `MaLoi` the browser is sent back with: the outcome the payer saw (a later change by
    /// a fault is not the payer's to see), or `11` once the window has passed unpaid.
    static func returnCode(of payment: PaymentRecord, now: Int64) -> String {
        if payment.laterStatus == .succeeded { return ResultCode.success.rawValue }
        if let outcome = payment.outcome { return outcome.rawValue }
        return now >= payment.expiresAt * 1000 ? ResultCode.expired.rawValue : "01"
    }

    static func resultText(_ code: String) -> String {
        switch code {
        case "00": "Thanh toán thành công."
        case "24": "Giao dịch đã bị hủy."
        case "51": "Tài khoản không đủ số dư."
        case "11": "Giao dịch đã hết hạn thanh toán."
        case "07": "Giao dịch bị nghi ngờ gian lận; tiền sẽ được hoàn lại."
        default: "Giao dịch đang chờ xử lý."
        }
    }

    static func returnURL(_ payment: PaymentRecord, code: String) -> String {
        let separator = payment.returnURL.contains("?") ? "&" : "?"
        return payment.returnURL + separator + "MaThamChieu=" + percentEncode(payment.reference) + "&MaLoi=" + code
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if WireParser.isUpperAlphanumeric(byte) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x2E || byte == 0x5F {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// `application/x-www-form-urlencoded` into first values by name.
    static func parseForm(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(32) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? percentDecode(parts[1]) : "" }
        }
        return fields
    }

    static func percentDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let c = iterator.next() {
            switch c {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = iterator.next(), let l = iterator.next(),
                      let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return "" }
                bytes.append(value)
            default: bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `150.000 ₫`.
    static func formatDong(_ amount: Int64) -> String {
        let digits = Array(String(amount))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(".") }
            out.append(d)
        }
        return out + " ₫"
    }

    /// `HH:mm:ss dd/MM/yyyy` in Vietnam time.
    static func display(_ unixSeconds: Int64) -> String {
        let t = Array(WireTime.format(unixSeconds: unixSeconds))
        return String(t[8...9]) + ":" + String(t[10...11]) + ":" + String(t[12...13]) + " "
            + String(t[6...7]) + "/" + String(t[4...5]) + "/" + String(t[0...3])
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

enum PaymentTemplates {
    static let layout = """
        <!doctype html>
        <html lang="vi">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}}</title>
        <style>
        body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f3f5f8;color:#1c2430}
        main{max-width:34rem;margin:0 auto;padding:1rem}
        header{background:#b3261e;color:#fff;padding:.9rem 1rem;font-weight:600}
        .card{background:#fff;border-radius:.6rem;padding:1rem;margin:1rem 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
        .amount{font-size:1.8rem;font-weight:700;margin:.3rem 0}
        dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem .8rem;margin:0}
        dt{color:#5b6573}dd{margin:0;overflow-wrap:anywhere}
        table{width:100%;border-collapse:collapse}td{padding:.35rem 0;border-top:1px solid #e5e8ec}td.n{text-align:right;white-space:nowrap}
        form{margin:.5rem 0}button{width:100%;min-height:3rem;font-size:1rem;border-radius:.5rem;border:1px solid #c9ced6;background:#fff;cursor:pointer}
        button.primary{background:#1a7f37;border-color:#1a7f37;color:#fff;font-weight:600}
        .note{color:#5b6573;font-size:.9rem}
        a.button{display:block;text-align:center;padding:.9rem;border-radius:.5rem;background:#1c2430;color:#fff;text-decoration:none}
        </style>
        </head>
        <body>
        <header>Cổng thanh toán Dịch vụ công quốc gia — môi trường thử nghiệm</header>
        <main>
        {{$content}}{{/content}}
        </main>
        </body>
        </html>
        """

    static let payment = """
        {{<layout}}
        {{$content}}
        <section class="card">
        <div class="note">Số tiền thanh toán</div>
        <div class="amount">{{amount}}</div>
        <dl>
        <dt>Mã giao dịch</dt><dd>{{transactionID}}</dd>
        <dt>Mã tham chiếu</dt><dd>{{reference}}</dd>
        <dt>Hồ sơ</dt><dd>{{dossierCode}}</dd>
        {{#procedureName}}<dt>Thủ tục</dt><dd>{{procedureName}}</dd>{{/procedureName}}
        {{#agencyName}}<dt>Cơ quan</dt><dd>{{agencyName}}</dd>{{/agencyName}}
        {{#payerName}}<dt>Người nộp</dt><dd>{{payerName}}</dd>{{/payerName}}
        <dt>Nội dung</dt><dd>{{description}}</dd>
        <dt>Hạn thanh toán</dt><dd>{{deadline}}</dd>
        </dl>
        </section>
        {{#hasLines}}
        <section class="card">
        <table>
        {{#lines}}<tr><td>{{name}} <span class="note">({{kind}})</span></td><td class="n">{{amount}}</td></tr>{{/lines}}
        </table>
        </section>
        {{/hasLines}}
        {{#pending}}
        <section class="card">
        <p class="note">Chọn kết quả giao dịch (môi trường thử nghiệm):</p>
        {{#outcomes}}
        <form method="post" action="/ppdvcqg/v1/thanh-toan/{{transactionID}}">
        <input type="hidden" name="KetQua" value="{{code}}">
        <button type="submit" class="{{style}}">{{label}}</button>
        </form>
        {{/outcomes}}
        </section>
        {{/pending}}
        {{^pending}}
        <section class="card">
        <p>{{result}}</p>
        <a class="button" href="{{returnLink}}">Quay lại trang dịch vụ</a>
        </section>
        {{/pending}}
        {{/content}}
        {{/layout}}
        """

    static let message = """
        {{<layout}}
        {{$content}}
        <section class="card">
        <h1>{{title}}</h1>
        <p>{{text}}</p>
        </section>
        {{/content}}
        {{/layout}}
        """
}
