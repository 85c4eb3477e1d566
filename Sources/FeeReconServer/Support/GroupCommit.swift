import Synchronization

/// Gathers work arriving concurrently into batches, so that one transaction durably commits many
/// items (group commit) while each caller is still answered only after the commit of its own
/// item. At low load a batch is a single item and adds no delay; under load, items that arrive
/// while a batch commits form the next one.
///
/// One batch runs whenever any item waits. A further one runs alongside only while at least
/// `overlapThreshold` items wait (half a batch unless told): a few waiting items join the next
/// batch of the transaction already running, which is cheaper for the database than a small
/// transaction of their own (a set-based statement costs about the same for 5 rows as for 40),
/// and a long queue is worked off by up to `maxConcurrentBatches` transactions at once. In
/// `Benchmarks/callback-ingest` this cut PostgreSQL's CPU per callback by about a sixth against
/// starting a transaction whenever fewer than the maximum ran.
///
/// Batches run in tasks of their own, so a caller that goes away (a client that disconnects)
/// cannot cancel work that other callers share; `process` answers every item, in input order.
final class GroupCommit<Item: Sendable, Answer: Sendable>: Sendable {
    private struct Waiting: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Answer, Never>
    }

    private struct State {
        var queue: [Waiting] = []
        var running = 0
    }

    private let process: @Sendable ([Item]) async -> [Answer]
    private let maxBatch: Int
    private let maxConcurrentBatches: Int
    private let overlapThreshold: Int
    private let state = Mutex(State())

    init(
        maxBatch: Int, maxConcurrentBatches: Int, overlapThreshold: Int? = nil,
        process: @escaping @Sendable ([Item]) async -> [Answer]
    ) {
        self.process = process
        self.maxBatch = max(1, maxBatch)
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.overlapThreshold = max(1, overlapThreshold ?? max(1, maxBatch / 2))
    }

    func submit(_ item: Item) async -> Answer {
        await withCheckedContinuation { continuation in
            let start = state.withLock { state in
                state.queue.append(Waiting(item: item, continuation: continuation))
                guard state.running == 0
                    || (state.running < maxConcurrentBatches && state.queue.count >= overlapThreshold)
                else { return false }
                state.running += 1
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    /// The next batch for a transaction that has just finished (or started), or nil when it
    /// should end: nothing waits, or so little that another running transaction takes it next.
    /// While anything waits, some transaction runs.
    private func take() -> [Waiting]? {
        state.withLock { state in
            guard !state.queue.isEmpty, state.running == 1 || state.queue.count >= overlapThreshold else {
                state.running -= 1
                return nil
            }
            let count = min(maxBatch, state.queue.count)
            let batch = Array(state.queue.prefix(count))
            state.queue.removeFirst(count)
            return batch
        }
    }

    private func drain() async {
        while let batch = take() {
            let answers = await process(batch.map(\.item))
            precondition(answers.count == batch.count, "a group commit answers every item")
            for (waiting, answer) in zip(batch, answers) { waiting.continuation.resume(returning: answer) }
        }
    }
}
