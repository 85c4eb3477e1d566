import ServiceLifecycle

/// Run in a `ServiceGroup`, the client lives until graceful shutdown (or cancellation) and then
/// shuts down. List it before the services that use it: the group stops services in reverse order.
extension CurlHTTPClient: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
