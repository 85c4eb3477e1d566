import Prometheus

/// The service's own metrics, kept in the registry `/metrics` exposes. Labels are short and of
/// low cardinality (reasons and result codes, never ids).
struct ServiceMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    /// Label-less counters are looked up once; labelled ones per value, by the registry, except
    /// the answers the callback endpoint gives (one per callback), which are looked up once.
    private let batches: Counter
    private let batched: Counter
    private let answers: [String: Counter]

    private static var rejected: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "feerecon", metricName: "callbacks_rejected", unitName: "total",
            helpText: "Inbound gateway messages refused before anything was stored")
    }
    private static var answered: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "feerecon", metricName: "callbacks", unitName: "total",
            helpText: "Verified gateway callbacks by the result code answered")
    }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        batches = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "feerecon", metricName: "callback_batches", unitName: "total", helpText: "Callback transactions committed"))
        batched = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "feerecon", metricName: "callback_batched", unitName: "total", helpText: "Callbacks processed in batches"))
        answers = Dictionary(uniqueKeysWithValues: Self.answerCodes.map { code in
            (code, registry.makeCounter(descriptor: Self.answered, labels: [("result", code)]))
        })
    }

    /// The codes the callback endpoint answers with (PROTOCOL.md §3).
    private static let answerCodes = ["00", "01", "02", "03", "04", "94", "95", "97", "99"]

    func callbackRejected(reason: String) {
        registry.makeCounter(descriptor: Self.rejected, labels: [("reason", reason)]).increment()
    }

    func callbackAnswered(code: String) {
        (answers[code] ?? registry.makeCounter(descriptor: Self.answered, labels: [("result", code)])).increment()
    }

    /// Batches and the callbacks in them: their ratio is the mean group-commit size.
    func callbackBatch(size: Int) {
        batches.increment()
        batched.increment(by: Int64(size))
    }
}
