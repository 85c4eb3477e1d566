import Cryptography
import CurlHTTP
import FeeReconCore
import Foundation
import Logging
import Signing

/// The national portal's payment platform (PROTOCOL.md §1, §4, §5, §6) over libcurl. Every
/// request is signed with the partner's current secret; every reply's signature is verified
/// before its body is read, and an unsigned or badly signed reply is an error, never data.
public struct PortalGatewayClient: PaymentGateway {
    private let configuration: PortalConfiguration
    private let http: CurlHTTPClient
    private let clock: UnixClock
    private let logger: Logger

    public init(configuration: PortalConfiguration, http: CurlHTTPClient, clock: @escaping UnixClock = systemUnixClock, logger: Logger) {
        self.configuration = configuration
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    // MARK: §1 create

    public func encodeCreate(_ request: CreatePaymentRequest) throws(GatewayError) -> [UInt8] {
        let wire = WireCreateRequest(
            MaDoiTac: request.partner.rawValue,
            MaThamChieu: request.reference.rawValue,
            SoTien: request.amount.dong,
            NgonNgu: request.language,
            ThoiGianGD: request.requestedAt.compact,
            HanThanhToan: request.expiresAt?.compact,
            Ip: request.payerAddress,
            ThongTinGiaoDich: request.description,
            UrlTraVe: request.returnURL,
            UrlThongBao: request.notifyURL,
            ThongTinBienLai: WireReceipt(
                MaHoSo: request.dossier.rawValue,
                MaTTHC: request.procedureCode,
                TenTTHC: request.procedureName,
                MaDonVi: request.agencyCode.rawValue,
                TenDonVi: request.agencyName,
                HoTenNguoiNop: request.applicantName,
                PhiLePhi: request.feeLines.map {
                    WireFeeLine(LoaiPhiLePhi: $0.kind.wire, MaPhiLePhi: $0.code, TenPhiLePhi: $0.name, SoTien: $0.amount.dong)
                }))
        return wire.encoded()
    }

    public func create(encoded: [UInt8], partner: PartnerCode) async throws(GatewayError) -> CreatePaymentResult {
        let exchange = try await send(.post, path: "/giao-dich/khoi-tao", partner: partner, body: encoded)
        let reply = try exchange.json()
        switch ResultCode(rawValue: reply.MaLoi) {
        case .success:
            guard let txn = reply.MaGiaoDich, Self.isPlausibleID(txn), let url = reply.DuongDanThanhToan,
                  url.hasPrefix("https://") || url.hasPrefix("http://"),
                  let deadline = reply.HanThanhToan.flatMap({ VietnamTime(compact: $0) })
            else { throw GatewayError(.malformedReply, "create reply 00 lacks a transaction, payment link or deadline") }
            return .accepted(gatewayTransaction: txn, checkoutURL: url, expiresAt: deadline)
        case .malformed: return .rejected(.malformedRequest)
        case .amountMismatch: return .rejected(.amountMismatch)
        case .duplicateDifferentContent: return .rejected(.duplicateWithDifferentContent)
        case .invalidSignature: return .rejected(.signatureRejected)
        case .otherError: throw GatewayError(.gatewayFailure, "gateway answered 99 to create")
        default:
            // Not a code §1 lists: the outcome is not known, so the intent stays unknown until a query.
            throw GatewayError(.malformedReply, "create answered with unexpected code \(Self.printable(reply.MaLoi))")
        }
    }

    // MARK: §4 query

    public func query(reference: PaymentReference, partner: PartnerCode) async throws(GatewayError) -> PaymentStatusReport {
        let body = try Self.encode(WireQueryRequest(
            MaDoiTac: partner.rawValue, MaThamChieu: reference.rawValue, ThoiGianGD: now.compact))
        let exchange = try await send(.post, path: "/giao-dich/tra-cuu", partner: partner, body: body)
        let reply = try exchange.json()
        switch ResultCode(rawValue: reply.MaLoi) {
        case .success:
            guard let code = reply.TrangThaiGD else { throw GatewayError(.malformedReply, "query reply 00 lacks TrangThaiGD") }
            if let echoed = reply.MaThamChieu, echoed != reference.rawValue {
                throw GatewayError(.malformedReply, "query reply is for another reference")
            }
            let status: PaymentStatusReport.Status = switch TransactionStatusCode(rawValue: code) {
            case .success: .known(.succeeded)
            case .pending: .known(.pending)
            case .failed: .known(.failed(.declined))
            case .reversed: .known(.failed(.reversed))
            case .refundInProgress, .refundSent: .refundInProgress
            case .refundRejected: .refundRejected
            case nil: .unrecognized(code: Self.printable(code))
            }
            guard reply.SoTien.map({ $0 >= 1 && $0 <= Money.maximumTransaction.dong }) ?? true,
                  (reply.SoTienDaHoan ?? 0) >= 0
            else { throw GatewayError(.malformedReply, "query reply carries an impossible amount") }
            return PaymentStatusReport(
                reference: reference, status: status, gatewayTransaction: reply.MaGiaoDich,
                amount: reply.SoTien.map { Money(dong: $0) }, amountRefunded: Money(dong: reply.SoTienDaHoan ?? 0),
                bankCode: Self.bankCode(reply.MaNganHang), occurredAt: reply.ThoiGianGD.flatMap { VietnamTime(compact: $0) })
        case .transactionNotFound, .notFound:
            return PaymentStatusReport(reference: reference, status: .notFound)
        case .invalidSignature:
            throw GatewayError(.gatewayFailure, "gateway refused the query's signature (97)")
        case .malformed:
            throw GatewayError(.invalidRequest, "gateway refused the query as malformed (03)")
        default:
            throw GatewayError(.gatewayFailure, "query answered with code \(Self.printable(reply.MaLoi))")
        }
    }

    // MARK: §5 refund

    public func refund(_ request: RefundRequest) async throws(GatewayError) -> RefundRequestResult {
        let body = try Self.encode(WireRefundRequest(
            MaDoiTac: request.partner.rawValue, MaYeuCau: request.requestID.rawValue, MaThamChieu: request.reference.rawValue,
            MaGiaoDich: request.gatewayTransaction, LoaiHoanTien: request.isFull ? "02" : "03",
            SoTienHoan: request.amount.dong, NguoiTao: request.requestedBy, LyDo: request.reason,
            ThoiGianGD: request.requestedAt.compact))
        // The message id names the request and its content: a resend of the same request is the
        // same message (and gets the remembered answer again), while a request that reuses the
        // MaYeuCau with other content is another message, which the gateway must answer 94 —
        // under the old id it would be handed the first request's answer.
        let messageID = "refund_\(request.requestID.rawValue)_" + SHA256.hexDigest(body).prefix(16)
        let exchange = try await send(.post, path: "/giao-dich/hoan-tien", partner: request.partner, body: body, messageID: messageID)
        let reply = try exchange.json()
        switch ResultCode(rawValue: reply.MaLoi) {
        case .success:
            guard let txn = reply.MaGiaoDichHoan, Self.isPlausibleID(txn) else {
                throw GatewayError(.malformedReply, "refund reply 00 lacks MaGiaoDichHoan")
            }
            return .accepted(refundTransaction: txn)
        case .amountMismatch: return .rejected(.amountMismatch)
        case .duplicateDifferentContent: return .rejected(.duplicateWithDifferentContent)
        case .originalNotSuccessful: return .rejected(.originalNotSuccessful)
        case .transactionNotFound, .notFound: return .rejected(.notFound)
        case .malformed: return .rejected(.malformedRequest)
        case .invalidSignature: return .rejected(.signatureRejected)
        case .otherError: throw GatewayError(.gatewayFailure, "gateway answered 99 to a refund")
        default: return .rejected(.unrecognized(code: Self.printable(reply.MaLoi)))
        }
    }

    // MARK: §6 settlement file

    public func fetchSettlement(
        day: CivilDate, partner: PartnerCode, row: (SettlementRow) async throws -> Void
    ) async throws -> SettlementSummary {
        let exchange = try await send(
            .get, path: "/doi-soat/\(day.compact)", partner: partner, body: [], timeout: configuration.settlementTimeout)
        guard exchange.status == 200 else {
            let reply = try exchange.json()
            switch ResultCode(rawValue: reply.MaLoi) {
            case .transactionNotFound, .notFound:
                throw GatewayError(.notAvailable, "settlement file for \(day.compact) is not available yet")
            default:
                throw GatewayError(.gatewayFailure, "settlement request answered with code \(Self.printable(reply.MaLoi))")
            }
        }
        let contentType = exchange.headers["content-type"]?.lowercased() ?? ""
        guard contentType.hasPrefix("text/csv") else {
            throw GatewayError(.invalidSettlementFile, "settlement reply is not text/csv")
        }
        let reader = SettlementFileReader(day: day, partner: partner)
        let totals = try await reader.read(exchange.body, row: row)
        return SettlementSummary(
            day: day, rowCount: totals.rowCount, paymentTotal: totals.paymentTotal, refundTotal: totals.refundTotal,
            sha256: SHA256.hexDigest(exchange.body), byteCount: exchange.body.count)
    }

    // MARK: Transport

    struct Exchange {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]

        func json() throws(GatewayError) -> WireReply {
            do {
                try StrictJSON.validate(body)
            } catch {
                throw GatewayError(.malformedReply, "reply is not acceptable JSON: \(error.reason)")
            }
            do {
                return try WireReply.decodeFlat(body) ?? JSONDecoder().decode(WireReply.self, from: Data(body))
            } catch {
                throw GatewayError(.malformedReply, "reply lacks MaLoi or has a field of the wrong type")
            }
        }
    }

    private var now: VietnamTime { VietnamTime(unixSeconds: clock()) }

    private func send(
        _ method: HTTPMethod, path: String, partner: PartnerCode, body: [UInt8], messageID: String? = nil,
        timeout: Duration? = nil
    ) async throws(GatewayError) -> Exchange {
        guard let secrets = configuration.partners[partner], !secrets.isEmpty else {
            throw GatewayError(.invalidRequest, "no secret configured for partner \(partner.rawValue)")
        }
        // One signature per configured key: during a rotation the gateway verifies the request
        // whichever key it holds.
        let signer = WebhookSigner(secrets: secrets, clock: clock)
        let signed = messageID.map { signer.headers(for: body, id: $0) } ?? signer.headers(for: body)
        var headers = HTTPHeaders()
        for field in signed.fields { headers.add(name: field.name, value: field.value) }
        headers.add(name: "x-partner-code", value: partner.rawValue)
        if method != .get { headers.add(name: "content-type", value: "application/json") }
        headers.add(name: "accept", value: method == .get ? "text/csv, application/json" : "application/json")

        let response: HTTPClientResponse
        do {
            response = try await http.execute(
                HTTPClientRequest(method: method, url: configuration.baseURL + path, headers: headers, body: body),
                timeout: timeout ?? configuration.requestTimeout, logger: logger)
        } catch {
            throw Self.translate(error)
        }

        let verifier = WebhookVerifier(secrets: secrets, clock: clock)
        do {
            _ = try verifier.verify(headers: { response.headers[$0] }, body: response.body, maxBodySize: method == .get ? configuration.maxSettlementBytes : StandardWebhooks.maxBodySize)
        } catch {
            logger.warning(
                "gateway reply rejected", metadata: ["gateway.path": "\(path)", "reason": "\(error.code)", "http.status": "\(response.status)"])
            throw GatewayError(.badReplySignature, "reply signature rejected (\(error.code))")
        }
        if let echoed = response.headers["x-partner-code"], echoed != partner.rawValue {
            throw GatewayError(.badReplySignature, "reply names another partner")
        }
        return Exchange(status: response.status, headers: response.headers, body: response.body)
    }

    static func translate(_ error: HTTPClientError) -> GatewayError {
        switch error.phase {
        case .dnsResolution, .connect, .tls, .connectTimeout:
            GatewayError(.unreachable, "gateway unreachable (\(error.phase.code))")
        case .invalidRequest:
            GatewayError(.invalidRequest, "request could not be sent (\(error.phase.code))")
        default:
            GatewayError(.timeout, "no complete answer from the gateway (\(error.phase.code))")
        }
    }

    /// JSON with its keys sorted: Foundation's encoder otherwise writes them in an order that
    /// changes from one call to the next, and the same message must always be the same bytes
    /// (a rebuilt retry, a stored request, a reply replayed byte for byte).
    static func encode(_ value: some Encodable) throws(GatewayError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw GatewayError(.invalidRequest, "request could not be encoded")
        }
    }

    /// A bank code as the gateway sent it when it is 1–32 printable ASCII characters, else nil:
    /// an informational field that is not worth refusing a payment for (the raw message keeps
    /// whatever was sent).
    static func bankCode(_ text: String?) -> String? {
        guard let text, (1...32).contains(text.utf8.count), text.utf8.allSatisfy(isPrintableASCII) else { return nil }
        return text
    }

    static func isPlausibleID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy(isPrintableASCII)
    }

    /// Visible ASCII: no space, no control character, nothing beyond `~`.
    static func isPrintableASCII(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F }

    /// A code from the wire, made safe to put in a log line or an error: the printable ASCII
    /// characters among its first 8. A code that already is so (every well-formed one: `KETQUA`,
    /// `00`) is returned as it is, without building a new string.
    static func printable(_ text: String, limit: Int = 8) -> String {
        if text.utf8.count <= limit, text.utf8.allSatisfy(isPrintableASCII) { return text }
        var kept: [UInt8] = []
        for scalar in text.unicodeScalars.prefix(limit) where scalar.isASCII && isPrintableASCII(UInt8(scalar.value)) {
            kept.append(UInt8(scalar.value))
        }
        return String(decoding: kept, as: UTF8.self)
    }
}
