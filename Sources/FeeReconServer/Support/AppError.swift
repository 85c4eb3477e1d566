import FeeReconCore
import Foundation
import Hummingbird

/// Every error a request can end in, mapped to HTTP in exactly one place. Bodies are RFC 9457
/// problem+json with a stable `type` code and a human `detail`; no SQL, stack or secret is ever
/// part of one. Citizen pages render the same errors as a readable page instead.
public struct AppError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case invalidRequest = "invalid-request"
        case validationFailed = "validation-failed"
        case malformedJSON = "malformed-json"
        case bodyTooLarge = "body-too-large"
        case unsupportedMediaType = "unsupported-media-type"
        case unauthenticated
        case forbidden
        case notFound = "not-found"
        case feeLinesFrozen = "fee-lines-frozen"
        case paymentInProgress = "payment-in-progress"
        case alreadyPaid = "dossier-already-paid"
        case idempotencyKeyMissing = "idempotency-key-missing"
        case idempotencyKeyReused = "idempotency-key-reused"
        case idempotencyRequestInProgress = "idempotency-request-in-progress"
        case gatewayUnavailable = "gateway-unavailable"
        case gatewayRejected = "gateway-rejected"
        case conflict
        case internalError = "internal-error"
        case serviceUnavailable = "service-unavailable"
    }

    public var kind: Kind
    public var detail: String
    /// For validation failures: the field path (`feeLines[3].amount`).
    public var field: String?

    public init(_ kind: Kind, _ detail: String, field: String? = nil) {
        self.kind = kind
        self.detail = detail
        self.field = field
    }

    public init(_ validation: ValidationError) {
        self.init(.validationFailed, validation.description, field: validation.field)
    }

    public var status: HTTPResponse.Status {
        switch kind {
        case .invalidRequest, .validationFailed, .malformedJSON, .idempotencyKeyMissing: .badRequest
        case .bodyTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .feeLinesFrozen, .paymentInProgress, .alreadyPaid, .idempotencyKeyReused, .idempotencyRequestInProgress, .conflict:
            .conflict
        case .gatewayUnavailable: .badGateway
        case .gatewayRejected: .badGateway
        case .internalError: .internalServerError
        case .serviceUnavailable: .serviceUnavailable
        }
    }

    public var title: String {
        switch kind {
        case .invalidRequest: "The request is not valid"
        case .validationFailed: "A field is not valid"
        case .malformedJSON: "The body is not valid JSON"
        case .bodyTooLarge: "The body is too large"
        case .unsupportedMediaType: "Unsupported media type"
        case .unauthenticated: "Authentication required"
        case .forbidden: "Not permitted"
        case .notFound: "Not found"
        case .feeLinesFrozen: "Fee lines can no longer change"
        case .paymentInProgress: "A payment is in progress"
        case .alreadyPaid: "The dossier is already paid"
        case .idempotencyKeyMissing: "Idempotency-Key header required"
        case .idempotencyKeyReused: "Idempotency-Key reused with a different request"
        case .idempotencyRequestInProgress: "The original request is still in progress"
        case .gatewayUnavailable: "The payment gateway is unavailable"
        case .gatewayRejected: "The payment gateway refused the payment"
        case .conflict: "Conflict"
        case .internalError: "Internal error"
        case .serviceUnavailable: "Service unavailable"
        }
    }

    public var description: String { "AppError(\(kind.rawValue))" }

    /// The problem+json document.
    public func problemBody(instance: String?) -> [UInt8] {
        let problem = Problem(
            type: "https://feerecon.gov.vn/problems/\(kind.rawValue)", title: title, status: Int(status.code),
            detail: detail, field: field, instance: instance)
        return (try? JSONCoding.encode(problem)) ?? Array(#"{"title":"Internal error","status":500}"#.utf8)
    }

    private struct Problem: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var field: String?
        var instance: String?
    }

    public func response(instance: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if kind == .idempotencyRequestInProgress || kind == .serviceUnavailable { headers[.retryAfter] = "1" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: problemBody(instance: instance))))
    }
}

