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

    func callbackBatch(size: Int) {
        registry.makeValueHistogram(
            name: "feerecon_callback_batch_size", buckets: [1, 2, 4, 8, 16, 32, 64, 128], help: "Callbacks committed per transaction"
        ).record(Double(size))
    }
}
