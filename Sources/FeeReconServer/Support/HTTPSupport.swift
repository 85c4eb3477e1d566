import FeeReconCore
import FeeReconStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Postgres
import Synchronization

extension AppError: HTTPResponseError {
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response(instance: request.uri.path)
    }
}

/// Reads a request body with a hard cap: a declared `Content-Length` over the cap is refused
/// before anything is read, and a streamed body is cut off as soon as it passes the cap.
func readBody(_ request: Request, limit: Int) async throws -> [UInt8] {
    if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
        throw AppError(.bodyTooLarge, "the body is \(declared) bytes; at most \(limit) are accepted")
    }
    do {
        let buffer = try await request.body.collect(upTo: limit)
        return Array(buffer.readableBytesView)
    } catch is NIOTooManyBytesError {
        throw AppError(.bodyTooLarge, "the body is over \(limit) bytes")
    }
}

/// Decodes an API body strictly: valid UTF-8 JSON, integers only (amounts are whole đồng), no
/// duplicate keys, then the type's fields, with the failing field named in the error.
func decodeStrict<T: Decodable>(_ type: T.Type, from bytes: [UInt8], request: Request) throws -> T {
    if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
        throw AppError(.unsupportedMediaType, "send the body as application/json")
    }
    guard !bytes.isEmpty else { throw AppError(.malformedJSON, "the body is empty; a JSON object is expected") }
    do {
        try StrictJSON.validate(bytes)
    } catch {
        throw AppError(.malformedJSON, error.reason)
    }
    do {
        return try JSONCoding.decoder().decode(T.self, from: Data(bytes))
    } catch let error as DecodingError {
        throw AppError(decoding: error)
    }
}

extension AppError {
    init(decoding error: DecodingError) {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            self.init(.validationFailed, "\(field): is required", field: field)
        case .typeMismatch(let type, let context):
            let field = path(context.codingPath)
            let expected = type == Int64.self || type == Int.self ? "an integer" : type == String.self ? "a string" : "\(type)"
            self.init(.validationFailed, "\(field): must be \(expected)", field: field)
        case .valueNotFound(_, let context):
            let field = path(context.codingPath)
            self.init(.validationFailed, "\(field): must not be null", field: field)
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            self.init(.validationFailed, "\(field.isEmpty ? "body" : field): \(context.debugDescription)", field: field.isEmpty ? nil : field)
        @unknown default:
            self.init(.validationFailed, "the body does not match the expected shape")
        }
    }
}

/// A JSON response from an Encodable value.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) throws -> Response {
    let bytes = try JSONCoding.encode(value)
    return jsonResponse(bytes: bytes, status: status, headers: extra)
}

func jsonResponse(bytes: [UInt8], status: HTTPResponse.Status, headers extra: HTTPFields = [:]) -> Response {
    var headers = extra
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}

/// Checks the dossier API's key on every request and puts the client in the context. Keys are
/// accepted as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
///
/// A key's stored record (its secret's hash and agencies) is reused for `APIKeyCache.lifetime`
/// after it was read, so a busy client costs no query per request; the presented secret is still
/// hashed and compared in constant time on every request. A revoked key, or a change of its
/// agencies, therefore takes effect within that lifetime (5 s).
struct APIKeyAuthenticator: RouterMiddleware {
    typealias Context = AppRequestContext
    let database: PostgresClient
    let cache: APIKeyCache

    init(database: PostgresClient, cache: APIKeyCache = APIKeyCache()) {
        self.database = database
        self.cache = cache
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented: String?
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw AppError(.unauthenticated, "the Authorization header must be `Bearer <key>`")
            }
            presented = String(parts[1])
        } else {
            presented = request.headers[HTTPField.Name("x-api-key")!]
        }
        guard let presented, !presented.isEmpty else {
            throw AppError(.unauthenticated, "send the API key as `Authorization: Bearer <key>`")
        }
        guard let parts = APIKeyStore.PresentedKey(presented) else {
            throw AppError(.unauthenticated, "the API key is not valid")
        }
        let stored: APIKeyStore.StoredKey?
        if let cached = cache.key(prefix: parts.prefix) {
            stored = cached
        } else {
            stored = try await database.withConnection { db in try await APIKeyStore.storedKey(prefix: parts.prefix, on: db) }
            if let stored { cache.remember(stored, prefix: parts.prefix) }
        }
        guard let client = stored?.client(presenting: parts.secret) else {
            throw AppError(.unauthenticated, "the API key is not valid")
        }
        var context = context
        context.apiClient = client
        return try await next(request, context)
    }
}

/// Live API keys recently read from the database, by prefix. Only keys that exist are kept (an
/// unknown prefix is looked up every time), at most `capacity` of them.
final class APIKeyCache: Sendable {
    static let lifetime: Duration = .seconds(5)
    static let capacity = 1024

    private struct Entry {
        var key: APIKeyStore.StoredKey
        var readAt: ContinuousClock.Instant
    }

    private let entries = Mutex<[String: Entry]>([:])

    func key(prefix: String) -> APIKeyStore.StoredKey? {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let entry = entries[prefix] else { return nil }
            guard now - entry.readAt < Self.lifetime else {
                entries[prefix] = nil
                return nil
            }
            return entry.key
        }
    }

    func remember(_ key: APIKeyStore.StoredKey, prefix: String) {
        let now = ContinuousClock.now
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[prefix] = Entry(key: key, readAt: now)
        }
    }
}

/// Turns any error that is not already an `AppError` into a problem+json 500 without details,
/// and logs it; a database that is down becomes a 503.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as AppError {
            if error.kind == .internalError { context.logger.error("request failed", metadata: ["error": "\(error.detail)"]) }
            return error.response(instance: request.uri.path)
        } catch let error as HTTPError {
            let kind: AppError.Kind = switch error.status.code {
            case 404: .notFound
            case 405: .invalidRequest
            case 413: .bodyTooLarge
            case 400..<500: .invalidRequest
            default: .internalError
            }
            var response = AppError(kind, error.body ?? error.status.reasonPhrase).response(instance: request.uri.path)
            response.status = error.status
            return response
        } catch let error as PostgresError where error.isConnectionError || error.code == .poolTimeout {
            context.logger.error("database unavailable", metadata: ["error": "\(error)"])
            return AppError(.serviceUnavailable, "the service is temporarily unavailable; retry shortly").response(instance: request.uri.path)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return AppError(.internalError, "the request could not be completed").response(instance: request.uri.path)
        }
    }
}
