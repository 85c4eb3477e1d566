import FeeReconStore
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The context of every request: Hummingbird's core storage, a request id for logs and the audit
/// log, and the peer's address (the payer's IP sent to the gateway).
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String
    public let remoteAddress: String
    /// Set by `APIKeyAuthenticator` when the request carries a valid key.
    public var apiClient: APIClient?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = UUID().uuidString.lowercased()
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "127.0.0.1"
        logger[metadataKey: "request.id"] = .string(requestID)
    }

    /// JSON API bodies are read explicitly with their own limits; this caps anything else.
    public var maxUploadSize: Int { 256 * 1024 }
}

/// The context of the dossier API once its API key has been checked.
public struct APIClientContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String
    public let remoteAddress: String
    public let client: APIClient

    public init(context: AppRequestContext) throws {
        guard let client = context.apiClient else {
            throw AppError(.unauthenticated, "send the API key as `Authorization: Bearer <key>`")
        }
        coreContext = context.coreContext
        requestID = context.requestID
        remoteAddress = context.remoteAddress
        self.client = client
        logger[metadataKey: "api_key.id"] = .string(client.id.uuidString.lowercased())
    }

    public var maxUploadSize: Int { 256 * 1024 }
}

