import FeeReconCore
import FeeReconStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import Postgres

/// The HTML templates (swift-mustache, escaping by default) and the one way pages are rendered.
struct Pages: Sendable {
    let library: MustacheLibrary

    static func load() async throws -> Pages {
        guard let directory = Bundle.module.resourceURL?.appendingPathComponent("Templates").path else {
            throw AppError(.internalError, "page templates are missing")
        }
        return Pages(library: try await MustacheLibrary(directory: directory))
    }

    func render(_ template: String, _ data: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(data, withTemplate: template) ?? "<!doctype html><title>FeeRecon</title><p>Page unavailable.</p>"
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A readable page for something that went wrong, with a next step.
    func message(
        status: HTTPResponse.Status, titleVietnamese: String, titleEnglish: String, vietnamese: String, english: String,
        nextLink: String? = nil, nextLabel: String? = nil
    ) -> Response {
        var data: [String: Any] = [
            "titleVietnamese": titleVietnamese, "titleEnglish": titleEnglish,
            "messageVietnamese": vietnamese, "messageEnglish": english,
        ]
        if let nextLink {
            data["nextLink"] = nextLink
            data["nextLabel"] = nextLabel ?? "Quay lại / Back"
        }
        return render("message", data, status: status)
    }

    func notFound() -> Response {
        message(
            status: .notFound, titleVietnamese: "Không tìm thấy hồ sơ", titleEnglish: "Dossier not found",
            vietnamese: "Đường liên kết thanh toán không đúng hoặc đã hết hiệu lực. Vui lòng kiểm tra lại tin nhắn hoặc liên hệ bộ phận một cửa.",
            english: "The payment link is wrong or no longer valid. Check the link you were given, or contact the one-stop desk.",
            nextLink: "/", nextLabel: "Trang chủ / Home")
    }

    func unavailable() -> Response {
        message(
            status: .serviceUnavailable, titleVietnamese: "Dịch vụ tạm thời gián đoạn", titleEnglish: "Temporarily unavailable",
            vietnamese: "Hệ thống đang bận. Vui lòng thử lại sau ít phút; bạn chưa bị trừ tiền.",
            english: "The service is busy. Please try again in a few minutes; you have not been charged.")
    }
}

/// The citizen's pages: the pay page at the dossier's secret link, the return page (status from
/// the database, never from the query string), and the receipt.
struct CitizenPagesController {
    let database: PostgresClient
    let payments: PaymentService
    let pages: Pages
    let endpoints: PublicEndpoints
    /// Whether the home page lists demo dossiers (only in the embedded demo).
    let demo: Bool
    let logger: Logger

    func register(on router: Router<AppRequestContext>) {
        router.get("", use: home)
        router.get("pay/{token}", use: payPage)
        router.post("pay/{token}", use: pay)
        router.get("pay/{token}/return", use: returnPage)
        router.get("pay/{token}/receipt", use: receipt)
    }

    private func guarded(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            logger.error("citizen page failed", metadata: ["error": "\(error)"])
            return pages.unavailable()
        }
    }

    private func dossier(_ context: AppRequestContext) async throws -> (DossierRecord, [IntentRecord])? {
        guard let token = context.parameters.get("token"), (32...64).contains(token.utf8.count),
              token.utf8.allSatisfy({ $0.isBase64URL })
        else { return nil }
        return try await database.withConnection { db in
            guard let dossier = try await DossierStore.dossier(payToken: token, on: db) else { return nil }
            return (dossier, try await IntentStore.intents(dossierID: dossier.id, on: db))
        }
    }

    @Sendable func home(_ request: Request, context: AppRequestContext) async throws -> Response {
        await guarded {
            var data: [String: Any] = [:]
            if demo {
                let dossiers = try await database.withConnection { db in
                    let agencies = try await DossierStore.agencies(on: db).map(\.id)
                    return try await DossierStore.recentDossiers(agencyIDs: agencies, limit: 50, on: db)
                }
                data["demo"] = true
                data["dossiers"] = dossiers.map { d -> [String: Any] in
                    let status = Self.dossierStatusText(d.status)
                    return [
                        "code": d.code.rawValue, "procedureName": d.procedureName, "total": d.amountDue.formatted,
                        "payLink": "/pay/\(d.payToken)", "statusVietnamese": status.vietnamese, "statusClass": status.cssClass,
                    ]
                }
            }
            return pages.render("home", data)
        }
    }

    @Sendable func payPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        await guarded {
            guard let (dossier, intents) = try await self.dossier(context) else { return pages.notFound() }
            var data = Self.dossierData(dossier)
            data["paid"] = dossier.status != .awaitingPayment
            data["openPayment"] = intents.contains { $0.status == .pending }
            data["payAction"] = "/pay/\(dossier.payToken)"
            return pages.render("pay", data)
        }
    }

    @Sendable func pay(_ request: Request, context: AppRequestContext) async throws -> Response {
        await guarded {
            guard let (dossier, _) = try await self.dossier(context) else { return pages.notFound() }
            let back = "/pay/\(dossier.payToken)"
            let result: PaymentService.StartResult
            do {
                result = try await payments.startPayment(
                    dossier: .id(dossier.id), payerAddress: context.remoteAddress, requester: .citizen, idempotency: nil,
                    requestID: context.requestID)
            } catch let error as AppError where error.kind == .alreadyPaid {
                return Response(status: .seeOther, headers: [.location: back + "/receipt"])
            } catch let error as AppError where error.kind == .conflict {
                return pages.message(
                    status: .conflict, titleVietnamese: "Cần liên hệ cơ quan", titleEnglish: "Please contact the agency",
                    vietnamese: "Hồ sơ này đã được thanh toán một phần; vui lòng liên hệ bộ phận một cửa để hoàn tất.",
                    english: "This dossier was partly paid; please contact the one-stop desk to settle the rest.", nextLink: back)
            }
            let intent: IntentRecord
            switch result {
            case .intent(let started, _), .answered(let started, _): intent = started
            case .replay: return Response(status: .seeOther, headers: [.location: back])
            }
            switch intent.status {
            case .pending:
                if let url = intent.checkoutURL {
                    return Response(status: .seeOther, headers: [.location: url])
                }
                return Response(status: .seeOther, headers: [.location: back + "/return"])
            case .unknown, .created:
                return pages.message(
                    status: .serviceUnavailable, titleVietnamese: "Cổng thanh toán chưa phản hồi",
                    titleEnglish: "The payment gateway has not answered",
                    vietnamese: "Chúng tôi chưa nhận được phản hồi từ cổng thanh toán và sẽ tự kiểm tra lại. Vui lòng thử lại sau ít phút; bạn chưa bị trừ tiền vì giao dịch này.",
                    english: "The payment gateway did not answer in time; the service will check with it. Please try again in a few minutes — you have not been charged for this attempt.",
                    nextLink: back, nextLabel: "Thử lại / Try again")
            case .failed:
                return pages.message(
                    status: .badGateway, titleVietnamese: "Cổng thanh toán từ chối giao dịch", titleEnglish: "The gateway refused the payment",
                    vietnamese: "Cổng thanh toán không chấp nhận yêu cầu này. Vui lòng liên hệ bộ phận một cửa.",
                    english: "The payment gateway refused this request. Please contact the one-stop desk.", nextLink: back)
            default:
                return Response(status: .seeOther, headers: [.location: back + "/return"])
            }
        }
    }

    @Sendable func returnPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        await guarded {
            guard let (dossier, intents) = try await self.dossier(context) else { return pages.notFound() }
            // The query string (MaThamChieu, MaLoi) is only a hint of which attempt the citizen
            // comes back from; what the page says comes from the database.
            let hinted = request.uri.queryParameters.get("MaThamChieu")
            var intent = intents.first { $0.reference.rawValue == hinted } ?? intents.last
            if let open = intent, open.status.isOpen {
                intent = try await payments.refresh(open)
            }
            let current = try await database.withConnection { db in try await DossierStore.dossier(id: dossier.id, on: db) } ?? dossier
            var data = Self.dossierData(current)
            data["reference"] = intent?.reference.rawValue
            data["selfLink"] = "/pay/\(dossier.payToken)/return"
            let text = Self.statusText(dossier: current, intent: intent)
            data["statusVietnamese"] = text.vietnamese
            data["statusEnglish"] = text.english
            data["statusClass"] = text.cssClass
            data["explanation"] = text.explanation
            data["paid"] = current.status != .awaitingPayment
            data["canRetry"] = current.status == .awaitingPayment && !(intent?.status.isOpen ?? false)
            if current.status == .awaitingPayment, intent?.status.isOpen ?? false { data["refreshSeconds"] = 3 }
            return pages.render("status", data)
        }
    }

    @Sendable func receipt(_ request: Request, context: AppRequestContext) async throws -> Response {
        await guarded {
            guard let (dossier, intents) = try await self.dossier(context) else { return pages.notFound() }
            guard dossier.status != .awaitingPayment else {
                return pages.message(
                    status: .notFound, titleVietnamese: "Chưa có biên lai", titleEnglish: "No receipt yet",
                    vietnamese: "Hồ sơ chưa được thanh toán nên chưa có biên lai.",
                    english: "The dossier is not paid yet, so there is no receipt.",
                    nextLink: "/pay/\(dossier.payToken)", nextLabel: "Thanh toán / Pay")
            }
            var data = Self.dossierData(dossier)
            data["paidTotal"] = dossier.amountPaid.formatted
            data["payments"] = intents.filter { $0.status.holdsMoney }.map { intent -> [String: Any] in
                [
                    "reference": intent.reference.rawValue, "gatewayTransaction": intent.gatewayTransaction ?? "—",
                    "bankCode": intent.bankCode ?? "—", "paidAt": intent.paidAt.map(Self.vietnamTime) ?? "—",
                ]
            }
            return pages.render("receipt", data)
        }
    }

    static func dossierData(_ dossier: DossierRecord) -> [String: Any] {
        [
            "dossierCode": dossier.code.rawValue, "agencyName": dossier.agency.name, "procedureName": dossier.procedureName,
            "procedureCode": dossier.procedureCode, "applicantName": dossier.applicantName, "total": dossier.amountDue.formatted,
            "payLink": "/pay/\(dossier.payToken)", "receiptLink": "/pay/\(dossier.payToken)/receipt",
            "feeLines": dossier.feeLines.map { line -> [String: Any] in
                ["name": line.name, "kindName": line.kind.vietnameseName, "kindEnglish": line.kind.englishName, "amount": line.amount.formatted]
            },
        ]
    }

    static func vietnamTime(_ date: Date) -> String {
        let t = VietnamTime(unixSeconds: Int64(date.timeIntervalSince1970.rounded(.down)))
        let s = t.secondOfDay
        return "\(pad2(t.date.day))/\(pad2(t.date.month))/\(t.date.year) \(pad2(Int(s / 3600))):\(pad2(Int(s / 60 % 60))):\(pad2(Int(s % 60)))"
    }

    private static func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    struct StatusText {
        var vietnamese: String
        var english: String
        var cssClass: String
        var explanation: String
    }

    static func dossierStatusText(_ status: DossierStatus) -> (vietnamese: String, cssClass: String) {
        switch status {
        case .awaitingPayment: ("Chờ thanh toán", "warn")
        case .paid: ("Đã thanh toán", "ok")
        case .overpaid: ("Đã thanh toán (thừa)", "ok")
        }
    }

    static func statusText(dossier: DossierRecord, intent: IntentRecord?) -> StatusText {
        switch dossier.status {
        case .paid:
            return StatusText(vietnamese: "Đã thanh toán", english: "Paid", cssClass: "ok",
                              explanation: "Cảm ơn bạn. Hồ sơ đã được thanh toán đủ. Thank you — the dossier is fully paid.")
        case .overpaid:
            return StatusText(vietnamese: "Đã thanh toán (nộp thừa)", english: "Paid (overpaid)", cssClass: "ok",
                              explanation: "Hồ sơ đã được thanh toán nhiều hơn số phải nộp; cơ quan sẽ hoàn lại khoản thừa. The dossier was paid more than once; the agency will refund the difference.")
        case .awaitingPayment:
            break
        }
        switch intent?.status {
        case .pending?, .created?, .unknown?:
            return StatusText(vietnamese: "Đang chờ xác nhận", english: "Waiting for confirmation", cssClass: "warn",
                              explanation: "Chúng tôi đang chờ cổng thanh toán xác nhận kết quả. We are waiting for the gateway to confirm the result.")
        case .failed?:
            return StatusText(vietnamese: "Giao dịch không thành công", english: "Payment failed", cssClass: "bad",
                              explanation: "Giao dịch không thành công; bạn có thể thử lại. The payment did not go through; you can try again.")
        case .cancelled?:
            return StatusText(vietnamese: "Giao dịch đã bị hủy", english: "Payment cancelled", cssClass: "bad",
                              explanation: "Bạn đã hủy giao dịch; bạn có thể thanh toán lại. You cancelled the payment; you can pay again.")
        case .expired?:
            return StatusText(vietnamese: "Giao dịch đã hết hạn", english: "Payment expired", cssClass: "bad",
                              explanation: "Thời gian thanh toán đã hết; bạn có thể thanh toán lại. The payment window closed; you can pay again.")
        default:
            return StatusText(vietnamese: "Chưa thanh toán", english: "Not paid", cssClass: "warn",
                              explanation: "Hồ sơ chưa được thanh toán. The dossier is not paid yet.")
        }
    }
}

extension UInt8 {
    var isBase64URL: Bool {
        (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) || (0x30...0x39).contains(self) || self == 0x2D || self == 0x5F
    }
}
