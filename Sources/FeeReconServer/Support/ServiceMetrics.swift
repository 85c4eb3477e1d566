import Prometheus

/// The service's own metrics, kept in the registry `/metrics` exposes. Labels are short and of
/// low cardinality (reasons and result codes, never ids).
struct ServiceMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    func callbackRejected(reason: String) {
        registry.makeCounter(
            name: "feerecon_callbacks_rejected_total", labels: [("reason", reason)],
            help: "Inbound gateway messages refused before anything was stored"
        ).increment()
    }

    func callbackAnswered(code: String) {
        registry.makeCounter(
            name: "feerecon_callbacks_total", labels: [("result", code)], help: "Verified gateway callbacks by the result code answered"
        ).increment()
    }

    /// Batches and the callbacks in them: their ratio is the mean group-commit size.
    func callbackBatch(size: Int) {
        registry.makeCounter(name: "feerecon_callback_batches_total", help: "Callback transactions committed").increment()
        registry.makeCounter(name: "feerecon_callback_batched_total", help: "Callbacks processed in batches").increment(by: Int64(size))
    }
}
