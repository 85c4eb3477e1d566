import CLibPQ
import Foundation
import Logging
import Synchronization

/// Cancels the statement a connection is running when the task that leased the connection is
/// cancelled (a request abandoned by its client, a timeout), so the server stops working on it
/// instead of running it to completion.
///
/// libpq's `PQcancel` opens a new connection to the server and blocks until it has sent the
/// request, so it is run on a thread of its own, never on the cooperative pool or an event loop.
/// The server acts on the request whenever it arrives: if the statement has ended meanwhile, it
/// could hit the next one. So a connection on which a cancel was sent is closed at the end of its
/// lease instead of being reused; the next lease opens a new one.
final class StatementCanceller: Sendable {
    /// libpq's cancel object of one session, freed when the last cancel using it has been sent.
    private final class Handle: @unchecked Sendable {
        // @unchecked: `PQcancel` may be called from any thread on the same object (it only reads it).
        let pointer: OpaquePointer

        init(_ pointer: OpaquePointer) {
            self.pointer = pointer
        }

        deinit { PQfreeCancel(pointer) }

        func send() -> String? {
            var message = [CChar](repeating: 0, count: 256)
            guard PQcancel(pointer, &message, Int32(message.count)) == 0 else { return nil }
            let text = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return String(decoding: text, as: UTF8.self)
        }
    }

    private struct State {
        var handle: Handle?
        var running = false
        var sent = false
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// The session's cancel object (nil when there is no session).
    func install(from connection: OpaquePointer?) {
        let handle = connection.flatMap(PQgetCancel).map(Handle.init)
        state.withLock { state in
            state = State(handle: handle)
        }
    }

    /// A statement is being sent and its results read.
    func statementStarted() {
        state.withLock { $0.running = true }
    }

    func statementEnded() {
        state.withLock { $0.running = false }
    }

    /// Asks the server to cancel the running statement, if one is running; returns at once.
    func cancel() {
        let handle: Handle? = state.withLock { state in
            guard state.running, let handle = state.handle else { return nil }
            state.sent = true
            return handle
        }
        guard let handle else { return }
        let logger = logger
        Thread.detachNewThread {
            if let failure = handle.send() {
                logger.warning("postgres cancel request failed", metadata: ["error": "\(failure)"])
            }
        }
    }

    /// Whether a cancel was sent since the last call.
    func takeSent() -> Bool {
        state.withLock { state in
            defer { state.sent = false }
            return state.sent
        }
    }
}
