import FeeReconStore
import Cryptography
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The context of every request: Hummingbird's core storage, a request id for logs and the audit
/// log, and the peer's address (the payer's IP sent to the gateway).
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String
    private let peer: SocketAddress?
    /// Set by `APIKeyAuthenticator` when the request carries a valid key.
    public var apiClient: APIClient?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = RequestID.next()
        peer = source.channel.remoteAddress
        logger[metadataKey: "request.id"] = .string(requestID)
    }

    /// The peer's IP address, formatted only when something asks for it.
    public var remoteAddress: String { peer?.ipAddress ?? "127.0.0.1" }

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


/// Request ids for logs and the audit log: a random prefix drawn once per process, then a
/// counter (`k7m2q9x4r8t3-1f`). Unique across replicas and restarts without drawing random
/// bytes or formatting a UUID for every request.
enum RequestID {
    private static let prefix = SecureRandom.string(length: 12, alphabet: "abcdefghijkmnpqrstuvwxyz23456789")
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return prefix + "-" + String(n, radix: 16)
    }
}
