#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two executors of one dedicated OS thread, on which all of a connection's libpq calls run.
///
/// The Swift cooperative pool has as many threads as cores (two on small machines), so a libpq call
/// blocked on the network there would stall unrelated work. Each connection instead owns a thread
/// that is both the serial executor of its actor and a task executor the pool prefers while a
/// caller's body holds the connection, so the hops between the two stay on this thread.
struct ConnectionExecutors: Sendable {
    let serial: ConnectionSerialExecutor
    let task: ConnectionTaskExecutor

    /// Starts a thread that lives until both executors are released and their queued jobs have run.
    init(name: String) {
        let thread = ConnectionThread(name: name)
        serial = ConnectionSerialExecutor(thread: thread)
        task = ConnectionTaskExecutor(thread: thread)
        thread.start()
    }
}

/// The thread and its FIFO job queue.
final class ConnectionThread: @unchecked Sendable {
    // @unchecked: `pending`, `liveExecutors` and `exiting` are only touched with `mutex` held;
    // `threadID` is written once, before either executor is handed out.

    fileprivate enum Job {
        // Each entry retains its executor, so an executor (and this thread) outlives its jobs.
        case actor(UnownedJob, ConnectionSerialExecutor)
        case task(UnownedJob, ConnectionTaskExecutor)
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [Job] = []
    private var liveExecutors = 2
    private var threadID = pthread_t()
    let name: String

    fileprivate init(name: String) {
        self.name = name
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        pending.reserveCapacity(8)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    fileprivate func start() {
        let retained = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let owner = Unmanaged<ConnectionThread>.fromOpaque(raw!).takeRetainedValue()
            owner.run()
            return nil
        }, retained)
        precondition(rc == 0, "pthread_create failed (\(rc))")
        threadID = thread
        pthread_detach(thread)
    }

    var isCurrent: Bool {
        pthread_equal(pthread_self(), threadID) != 0
    }

    fileprivate func enqueue(_ job: Job) {
        pthread_mutex_lock(mutex)
        let wasEmpty = pending.isEmpty
        pending.append(job)
        if wasEmpty { pthread_cond_signal(condition) }
        pthread_mutex_unlock(mutex)
    }

    fileprivate func executorReleased() {
        pthread_mutex_lock(mutex)
        liveExecutors -= 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    private func run() {
        var batch: [Job] = []
        batch.reserveCapacity(8)
        while true {
            pthread_mutex_lock(mutex)
            while pending.isEmpty && liveExecutors > 0 {
                pthread_cond_wait(condition, mutex)
            }
            if pending.isEmpty {
                pthread_mutex_unlock(mutex)
                return
            }
            swap(&batch, &pending)
            pthread_mutex_unlock(mutex)

            for job in batch {
                switch job {
                case .actor(let job, let executor):
                    job.runSynchronously(on: executor.asUnownedSerialExecutor())
                case .task(let job, let executor):
                    job.runSynchronously(on: executor.asUnownedTaskExecutor())
                }
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}

/// The serial executor of a `PostgresConnection` actor: runs its jobs on the connection's thread.
final class ConnectionSerialExecutor: SerialExecutor {
    private let thread: ConnectionThread

    fileprivate init(thread: ConnectionThread) {
        self.thread = thread
    }

    deinit { thread.executorReleased() }

    func enqueue(_ job: consuming ExecutorJob) {
        thread.enqueue(.actor(UnownedJob(job), self))
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    var isCurrentThread: Bool { thread.isCurrent }

    func checkIsolated() {
        precondition(thread.isCurrent, "not on the connection thread \(thread.name)")
    }
}

/// A task executor on the same thread as the connection's serial executor.
final class ConnectionTaskExecutor: TaskExecutor {
    private let thread: ConnectionThread

    fileprivate init(thread: ConnectionThread) {
        self.thread = thread
    }

    deinit { thread.executorReleased() }

    func enqueue(_ job: consuming ExecutorJob) {
        thread.enqueue(.task(UnownedJob(job), self))
    }
}
