import FeeReconStore
import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// The one-stop system's view of the notifications sent to it: which failed, each one's attempts,
/// and a replay. Scoped to the API key's agencies like everything else.
struct NotificationAPIController {
    let database: PostgresClient

    var routes: RouteCollection<APIClientContext> {
        let routes = RouteCollection(context: APIClientContext.self)
        routes.get("notifications", use: list)
        routes.get("notifications/{id}", use: show)
        routes.post("notifications/{id}/replay", use: replay)
        return routes
    }

    struct NotificationView: Encodable {
        var id: Int64
        var event: String
        var messageId: String
        var status: String
        var attempts: Int
        var nextAttemptAt: Date?
        var lastHttpStatus: Int?
        var lastError: String?
        var createdAt: Date
        var deliveredAt: Date?
        var attemptLog: [Attempt]?

        struct Attempt: Encodable {
            var attempt: Int
            var startedAt: Date
            var durationMs: Int
            var httpStatus: Int?
            var error: String?
        }

        init(_ record: NotificationRecord, attempts: [NotificationAttempt]? = nil) {
            id = record.id
            event = record.event
            messageId = record.messageID
            status = record.status
            self.attempts = record.attempts
            nextAttemptAt = record.nextAttemptAt
            lastHttpStatus = record.lastHTTPStatus
            lastError = record.lastError
            createdAt = record.createdAt
            deliveredAt = record.deliveredAt
            attemptLog = attempts?.map {
                Attempt(attempt: $0.attempt, startedAt: $0.startedAt, durationMs: $0.durationMilliseconds, httpStatus: $0.httpStatus, error: $0.error)
            }
        }
    }

    struct ListView: Encodable {
        var notifications: [NotificationView]
    }

    @Sendable func list(_ request: Request, context: APIClientContext) async throws -> Response {
        let status = request.uri.queryParameters.get("status")
        if let status, !["pending", "delivered", "failed"].contains(status) {
            throw AppError(.validationFailed, "status: must be pending, delivered or failed", field: "status")
        }
        let limitText = request.uri.queryParameters.get("limit")
        let limit = limitText.flatMap { Int($0) } ?? 100
        guard (1...1000).contains(limit), limitText == nil || Int(limitText!) != nil else {
            throw AppError(.validationFailed, "limit: must be an integer from 1 to 1000", field: "limit")
        }
        let records = try await database.withConnection { db in
            try await OutboxStore.list(agencyIDs: Array(context.client.agencyIDs), status: status, limit: limit, on: db)
        }
        return try jsonResponse(ListView(notifications: records.map { NotificationView($0) }))
    }

    private func notification(_ context: APIClientContext) async throws -> (NotificationRecord, [NotificationAttempt]) {
        guard let text = context.parameters.get("id"), let id = Int64(text) else { throw AppError(.notFound, "no such notification") }
        let found: (NotificationRecord, [NotificationAttempt])? = try await database.withConnection { db in
            guard let record = try await OutboxStore.notification(id: id, on: db), context.client.mayAct(for: record.agencyID) else {
                return nil
            }
            return (record, try await OutboxStore.attempts(notificationID: id, on: db))
        }
        guard let found else { throw AppError(.notFound, "no such notification for this API key") }
        return found
    }

    @Sendable func show(_ request: Request, context: APIClientContext) async throws -> Response {
        let (record, attempts) = try await notification(context)
        return try jsonResponse(NotificationView(record, attempts: attempts))
    }

    @Sendable func replay(_ request: Request, context: APIClientContext) async throws -> Response {
        let (record, _) = try await notification(context)
        guard record.status != "delivered" else {
            throw AppError(.conflict, "notification \(record.id) was already delivered")
        }
        // A pending one is still on its retry schedule, and may be in delivery right now.
        guard record.status == "failed" else {
            throw AppError(.conflict, "notification \(record.id) is still being retried; only a failed notification is replayed")
        }
        let replayed = try await database.withTransaction { db in
            let done = try await OutboxStore.replay(id: record.id, agencyIDs: Array(context.client.agencyIDs), on: db)
            if done {
                try await AuditStore.record(
                    actor: .apiKey, actorID: context.client.id.uuidString.lowercased(), action: "notification.replayed",
                    agencyID: record.agencyID, subject: "\(record.id)", requestID: context.requestID, on: db)
            }
            return done
        }
        guard replayed else { throw AppError(.conflict, "notification \(record.id) cannot be replayed now") }
        let (updated, attempts) = try await notification(context)
        return try jsonResponse(NotificationView(updated, attempts: attempts), status: .accepted)
    }
}
