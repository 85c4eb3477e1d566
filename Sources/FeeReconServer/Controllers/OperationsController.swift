import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import Prometheus

/// `/healthz` (the process is up), `/readyz` (it can reach its database) and `/metrics`
/// (Prometheus text format).
struct OperationsController {
    let database: PostgresClient
    let registry: PrometheusCollectorRegistry

    func register(on router: Router<AppRequestContext>) {
        router.get("healthz") { _, _ in Self.text("ok\n") }
        router.get("readyz") { _, context in
            do {
                let one = try await database.withConnection { db in try await db.query("SELECT 1::int4")[0].decode(Int32.self) }
                return Self.text(one == 1 ? "ready\n" : "not ready\n", status: one == 1 ? .ok : .serviceUnavailable)
            } catch {
                context.logger.warning("readiness check failed", metadata: ["error": "\(error)"])
                return Self.text("database unavailable\n", status: .serviceUnavailable)
            }
        }
        router.get("metrics") { _, _ in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
