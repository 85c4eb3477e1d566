import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// The one-stop system's JSON API: dossiers and their payment intents, behind API keys scoped
/// to agencies. A key never learns anything about another agency's dossiers (404).
struct DossierAPIController {
    let database: PostgresClient
    let dossiers: DossierService
    let payments: PaymentService
    let endpoints: PublicEndpoints

    static let maxBody = 128 * 1024

    var routes: RouteCollection<APIClientContext> {
        let routes = RouteCollection(context: APIClientContext.self)
        routes.put("dossiers/{code}", use: putDossier)
        routes.get("dossiers/{code}", use: getDossier)
        routes.post("dossiers/{code}/payment-intents", use: createIntent)
        routes.get("payment-intents/{id}", use: getIntent)
        return routes
    }

    private func dossierCode(_ context: APIClientContext) throws -> DossierCode {
        let text = context.parameters.get("code") ?? ""
        do {
            return try DossierCode(validating: text)
        } catch {
            throw AppError(error)
        }
    }

    @Sendable func putDossier(_ request: Request, context: APIClientContext) async throws -> Response {
        let code = try dossierCode(context)
        let body = try await readBody(request, limit: Self.maxBody)
        let input = try decodeStrict(DossierInput.self, from: body, request: request)
        let details = try input.details(for: code)
        let result = try await dossiers.upsert(code: code, details: details, client: context.client, requestID: context.requestID)
        let (record, status): (DossierRecord, HTTPResponse.Status) = switch result {
        case .created(let record): (record, .created)
        case .updated(let record), .unchanged(let record): (record, .ok)
        }
        let intents = try await database.withConnection { db in try await IntentStore.intents(dossierID: record.id, on: db) }
        var headers = HTTPFields()
        headers[.location] = "/v1/dossiers/\(record.code.rawValue)"
        return try jsonResponse(DossierView(record, intents: intents, endpoints: endpoints), status: status, headers: headers)
    }

    @Sendable func getDossier(_ request: Request, context: APIClientContext) async throws -> Response {
        let code = try dossierCode(context)
        guard let (record, intents) = try await dossiers.dossier(code: code, client: context.client) else {
            throw AppError(.notFound, "no dossier \(code) for this API key")
        }
        return try jsonResponse(DossierView(record, intents: intents, endpoints: endpoints))
    }

    @Sendable func createIntent(_ request: Request, context: APIClientContext) async throws -> Response {
        let code = try dossierCode(context)
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], !key.isEmpty else {
            throw AppError(.idempotencyKeyMissing, "send an Idempotency-Key header (1–255 printable characters) so a retry cannot pay twice")
        }
        guard key.utf8.count <= 255, key.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw AppError(.invalidRequest, "Idempotency-Key must be 1–255 printable ASCII characters")
        }
        let body = try await readBody(request, limit: 16 * 1024)
        let input = body.isEmpty ? IntentInput() : try decodeStrict(IntentInput.self, from: body, request: request)
        if let ip = input.payerIp, !Self.isIPAddress(ip) {
            throw AppError(.validationFailed, "payerIp: must be an IPv4 or IPv6 address", field: "payerIp")
        }
        var fingerprint = SHA256()
        fingerprint.update(Array("POST /v1/dossiers/\(code.rawValue)/payment-intents\n".utf8))
        fingerprint.update(body)
        let idempotency = PaymentService.Idempotency(
            apiKey: context.client.id, key: key, requestHash: fingerprint.finalize(),
            createdAnswer: { intent in try JSONCoding.encode(IntentView(intent, dossierCode: code)) })

        // The dossier is read under its lock inside startPayment, and is not found unless this
        // key acts for its agency.
        let result = try await payments.startPayment(
            dossier: .code(code, agencies: context.client.agencyIDs), payerAddress: input.payerIp ?? context.remoteAddress, requester: .apiClient(context.client),
            idempotency: idempotency, requestID: context.requestID)
        switch result {
        case .replay(let status, let body):
            return jsonResponse(bytes: body, status: HTTPResponse.Status(code: status))
        case .answered(let intent, let bytes):
            var headers = HTTPFields()
            headers[.location] = "/v1/payment-intents/\(intent.id.uuidString.lowercased())"
            return jsonResponse(bytes: bytes, status: .created, headers: headers)
        case .intent(let intent, let created):
            let status: HTTPResponse.Status = created ? .created : .ok
            let bytes = try JSONCoding.encode(IntentView(intent, dossierCode: code))
            try await database.withConnection { db in
                try await IdempotencyStore.complete(apiKey: context.client.id, key: key, status: Int(status.code), body: bytes, on: db)
            }
            var headers = HTTPFields()
            headers[.location] = "/v1/payment-intents/\(intent.id.uuidString.lowercased())"
            return jsonResponse(bytes: bytes, status: status, headers: headers)
        }
    }

    @Sendable func getIntent(_ request: Request, context: APIClientContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw AppError(.notFound, "no such payment intent")
        }
        let found: (IntentRecord, DossierRecord)? = try await database.withConnection { db in
            guard let intent = try await IntentStore.intent(id: id, on: db),
                  let dossier = try await DossierStore.dossier(id: intent.dossierID, on: db),
                  context.client.mayAct(for: dossier.agency.id)
            else { return nil }
            return (intent, dossier)
        }
        guard let (intent, dossier) = found else { throw AppError(.notFound, "no such payment intent for this API key") }
        return try jsonResponse(IntentView(intent, dossierCode: dossier.code))
    }

    static func isIPAddress(_ text: String) -> Bool {
        // inet_pton reads a C string: it would stop at a NUL and accept what comes before it.
        // 45 bytes is the longest textual IPv6 address (with an embedded IPv4 one).
        guard (1...45).contains(text.utf8.count), !text.utf8.contains(0) else { return false }
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
