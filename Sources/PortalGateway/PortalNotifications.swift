import FeeReconCore
import Foundation
import Signing

/// The receiving side of §3: verifies an inbound callback, decodes it into a
/// `GatewayNotification`, and builds the signed reply. The callback endpoint calls it in that
/// order and stores the raw message between verification and acting on it.
public struct PortalNotifications: Sendable {
    private let partners: [PartnerCode: [WebhookSecret]]
    private let clock: UnixClock

    public init(partners: [PartnerCode: [WebhookSecret]], clock: @escaping UnixClock = systemUnixClock) {
        self.partners = partners
        self.clock = clock
    }

    /// The partner a message's `x-partner-code` names, if it is one of those configured.
    public func configuredPartner(_ code: String?) -> PartnerCode? {
        guard let code, let partner = PartnerCode(rawValue: code), partners[partner]?.isEmpty == false else { return nil }
        return partner
    }

    /// A message whose signature checked out.
    public struct Verified: Sendable {
        public var partner: PartnerCode
        public var messageID: String
    }

    /// Why an inbound message was refused before it was read.
    public struct Rejection: Error, Sendable {
        /// The partner, when the header named a configured one (its reply can then be signed).
        public var partner: PartnerCode?
        /// Short stable reason for metrics and logs.
        public var reason: String
    }

    /// Verifies the Standard Webhooks headers against the secrets of the partner named by
    /// `x-partner-code`, before anything of the body is parsed.
    public func verify(header: (String) -> String?, body: some Collection<UInt8>) -> Result<Verified, Rejection> {
        guard let partner = configuredPartner(header("x-partner-code")), let secrets = partners[partner] else {
            return .failure(Rejection(partner: nil, reason: "unknown_partner"))
        }
        do {
            let verified = try WebhookVerifier(secrets: secrets, clock: clock).verify(headers: header, body: body)
            return .success(Verified(partner: partner, messageID: verified.id))
        } catch {
            // The partner is configured, so the refusal is signed for it: the reply carries a
            // fresh id of its own, whatever the message's was.
            return .failure(Rejection(partner: partner, reason: error.code))
        }
    }

    /// What a verified body says, in domain terms.
    public enum Decoded: Sendable {
        case notification(GatewayNotification, messageType: String, reference: String)
        /// The body is not a valid message of this protocol; answered `03`.
        case malformed(reason: String, messageType: String, reference: String?)
        /// The body names another partner than the header; answered `97`.
        case partnerMismatch
    }

    public func decode(_ body: [UInt8], partner: PartnerCode) -> Decoded {
        do {
            try StrictJSON.validate(body)
        } catch {
            if Self.namesAnotherPartner(body, partner) { return .partnerMismatch }
            return .malformed(reason: error.reason, messageType: "unparsed", reference: nil)
        }
        let wire: WireCallback
        do {
            wire = try WireCallback.decodeFlat(body) ?? JSONDecoder().decode(WireCallback.self, from: Data(body))
        } catch {
            if Self.namesAnotherPartner(body, partner) { return .partnerMismatch }
            return .malformed(reason: "a required field is missing or has the wrong type", messageType: "unparsed", reference: nil)
        }
        // Stored with the message, so always within the columns' domains: a type of 1–8
        // printable characters, a reference of printable ASCII (NUL and the like removed).
        let printedType = PortalGatewayClient.printable(wire.LoaiBanTin)
        let type = printedType.isEmpty ? "unknown" : printedType
        let printedReference = PortalGatewayClient.printable(wire.MaThamChieu, limit: 64)
        let rawReference: String? = printedReference.isEmpty ? nil : printedReference
        func malformed(_ reason: String) -> Decoded { .malformed(reason: reason, messageType: type, reference: rawReference) }

        guard wire.MaDoiTac == partner.rawValue else { return .partnerMismatch }
        guard let reference = PaymentReference(rawValue: wire.MaThamChieu) else { return malformed("MaThamChieu is not 1–20 of A-Z, a-z, 0-9") }
        guard PortalGatewayClient.isPlausibleID(wire.MaGiaoDich) else { return malformed("MaGiaoDich is missing or malformed") }
        let amount = Money(dong: wire.SoTien)
        guard amount.isValidTransactionAmount else { return malformed("SoTien must be 1…10^12 đồng") }
        guard let occurredAt = VietnamTime(compact: wire.ThoiGianGD) else { return malformed("ThoiGianGD is not yyyyMMddHHmmss") }
        if let currency = wire.MaTienTe, currency != "VND" { return malformed("MaTienTe must be VND") }
        let attempt = wire.LanGui ?? 1
        guard attempt >= 1 else { return malformed("LanGui must be 1 or more") }

        switch wire.LoaiBanTin {
        case "KETQUA":
            let outcome: ReportedOutcome = switch ResultCode(rawValue: wire.MaLoi) {
            case .success: .known(.succeeded)
            case .suspectedFraud: .known(.failed(.suspectedFraud))
            case .expired: .known(.expired)
            case .cancelledByPayer: .known(.cancelled)
            case .insufficientFunds: .known(.failed(.insufficientFunds))
            default: .unrecognized(code: PortalGatewayClient.printable(wire.MaLoi))
            }
            let notice = PaymentResultNotice(
                partner: partner, reference: reference, gatewayTransaction: wire.MaGiaoDich, amount: amount, outcome: outcome,
                bankCode: PortalGatewayClient.bankCode(wire.MaNganHang), occurredAt: occurredAt, dossier: wire.MaHoSo, attempt: attempt)
            return .notification(.paymentResult(notice), messageType: type, reference: reference.rawValue)
        case "HOANTIEN":
            guard let requestID = wire.MaYeuCau, RefundRequestID(rawValue: requestID) != nil else {
                return malformed("MaYeuCau is missing or malformed")
            }
            guard let refundTxn = wire.MaGiaoDichHoan, PortalGatewayClient.isPlausibleID(refundTxn) else {
                return malformed("MaGiaoDichHoan is missing or malformed")
            }
            guard let refundAmount = wire.SoTienHoan.map({ Money(dong: $0) }), refundAmount.isValidTransactionAmount else {
                return malformed("SoTienHoan must be 1…10^12 đồng")
            }
            let completed: Bool
            switch (wire.MaLoi, wire.TrangThaiGD) {
            case ("00", "00"): completed = true
            case ("99", "09"): completed = false
            default: return malformed("a refund result is MaLoi 00 with TrangThaiGD 00, or 99 with 09")
            }
            let notice = RefundResultNotice(
                partner: partner, requestID: requestID, reference: reference, gatewayTransaction: wire.MaGiaoDich,
                refundTransaction: refundTxn, refundAmount: refundAmount, completed: completed, occurredAt: occurredAt,
                attempt: attempt)
            return .notification(.refundResult(notice), messageType: type, reference: reference.rawValue)
        default:
            return malformed("LoaiBanTin must be KETQUA or HOANTIEN")
        }
    }

    /// Whether a body that is not a valid message still is a JSON object whose `MaDoiTac` is not
    /// the verified partner's (of another value or type): the partner check comes first whatever
    /// else is wrong, so such a body is a 97 (never remembered), not a final 03.
    static func namesAnotherPartner(_ body: [UInt8], _ partner: PartnerCode) -> Bool {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
              let bodyPartner = object["MaDoiTac"]
        else { return false }
        return (bodyPartner as? String) != partner.rawValue
    }

    /// A reply ready to send and to store for replay.
    public struct Reply: Sendable {
        public var status: Int
        /// The wire result code, stored with the message.
        public var code: String
        public var body: [UInt8]
        /// Final answers are replayed byte for byte to a retry with the same message id.
        public var isFinal: Bool

        public init(status: Int, code: String, body: [UInt8], isFinal: Bool) {
            self.status = status
            self.code = code
            self.body = body
            self.isFinal = isFinal
        }
    }

    public func reply(_ answer: NotificationAnswer) -> Reply {
        let code: ResultCode = switch answer {
        case .applied: .success
        case .alreadyApplied: .alreadyConfirmed
        case .unknownReference: .notFound
        case .amountMismatch: .amountMismatch
        case .malformed: .malformed
        case .failure: .otherError
        }
        return reply(code: code)
    }

    /// The reply to a message refused for its signature, timestamp or partner.
    public var rejectionReply: Reply { reply(code: .invalidSignature) }

    /// The reply to a body over 64 KiB.
    public var tooLargeReply: Reply {
        var reply = reply(code: .malformed)
        reply.status = 413
        return reply
    }

    private func reply(code: ResultCode) -> Reply {
        let body = Self.replyBodies[code] ?? Self.answerBody(code)
        return Reply(status: code.httpStatus, code: code.rawValue, body: body, isFinal: Self.finalCodes.contains(code.rawValue))
    }

    /// The body of every reply this side sends, encoded once: it depends on the code alone.
    private static let replyBodies: [ResultCode: [UInt8]] = Dictionary(
        uniqueKeysWithValues: [ResultCode.success, .alreadyConfirmed, .notFound, .amountMismatch, .malformed, .otherError, .invalidSignature]
            .map { ($0, answerBody($0)) })

    private static func answerBody(_ code: ResultCode) -> [UInt8] {
        (try? PortalGatewayClient.encode(WireAnswer(MaLoi: code.rawValue, MoTaLoi: code.vietnameseDescription))) ?? []
    }

    static let finalCodes: Set<String> = ["00", "02", "03", "04", "94", "95"]

    /// The HTTP status that goes with a stored result code, for a replayed answer.
    public func status(forCode code: String) -> Int { ResultCode(rawValue: code)?.httpStatus ?? 500 }

    /// Signed headers for a reply body to `partner`: a fresh message id and timestamp each time.
    /// Signed with every key configured for the partner, so that during a key rotation the
    /// gateway verifies the reply whichever of the keys it has moved to.
    public func signedHeaders(for body: [UInt8], partner: PartnerCode) -> [(name: String, value: String)] {
        guard let secrets = partners[partner], !secrets.isEmpty else { return [] }
        let headers = WebhookSigner(secrets: secrets, clock: clock).headers(for: body)
        return headers.fields + [(name: "x-partner-code", value: partner.rawValue)]
    }
}
