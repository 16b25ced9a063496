import Dispatch
import Foundation
import Logging
import Synchronization

/// Takes visits from any number of request threads and writes them in batches on a thread of its own.
///
/// ``record(_:)`` holds a lock only long enough to append to an array, and never waits for the
/// database: the writer thread takes whole batches out under the same lock and writes them after
/// releasing it. ``stop()`` writes everything still buffered and returns when it is on disk.
public final class VisitRecorder: Sendable {
    /// Figures about the writer, for logs, tests and health checks.
    public struct Statistics: Sendable, Equatable {
        public var visitsRecorded = 0
        public var visitsWritten = 0
        public var batchesWritten = 0
        public var failedWrites = 0
        public var lastError: String?
    }

    private struct State {
        var buffer: VisitBuffer
        /// Batches handed out by the buffer and not yet written, oldest first.
        var ready: [VisitBatch] = []
        var stopping = false
        /// Set when the writer thread has ended: nothing recorded after this is ever written.
        var writerEnded = false
        var statistics = Statistics()
    }

    private let state: Mutex<State>
    private let store: VisitorStore
    private let logger: Logger
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Signalled when a batch is ready or a stop is asked for, so the writer need not wait out its timer.
    private let wakeUp = DispatchSemaphore(value: 0)
    /// Signalled once by the writer thread when it has written everything and ended.
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)

    /// How long the writer waits before trying a failed batch again.
    static let retryDelay: Duration = .seconds(1)
    /// How long ``stop()`` keeps retrying a failing write before it gives the visits up as lost.
    static let stopRetryLimit: Duration = .seconds(10)

    public init(
        store: VisitorStore,
        batchSize: Int,
        flushInterval: Duration,
        logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.store = store
        self.logger = logger
        self.now = now
        self.state = Mutex(State(buffer: VisitBuffer(batchSize: batchSize, flushInterval: flushInterval, now: now())))
    }

    /// Starts the writer thread; call once.
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in runWriter() }
        thread.name = "visit-writer"
        thread.start()
    }

    /// Buffers a visit. Never waits for the database.
    public func record(_ visit: Visit) {
        let (batchReady, tooLate) = state.withLock { state -> (Bool, Bool) in
            state.statistics.visitsRecorded += 1
            if state.writerEnded { return (false, true) }
            guard case .flush(let batch) = state.buffer.append(visit, now: now()) else { return (false, false) }
            state.ready.append(batch)
            return (true, false)
        }
        if tooLate { logger.error("visit recorded after the writer stopped: it will not be written") }
        if batchReady { wakeUp.signal() }
    }

    /// Writes everything buffered and ends the writer thread; returns when the visits are on disk, or
    /// when writes have failed for ``stopRetryLimit`` (the visits are then logged as lost).
    public func stop() {
        guard started.load(ordering: .acquiring) else { return }
        let alreadyStopping = state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !alreadyStopping else { return }
        wakeUp.signal()
        finished.wait()
    }

    public var statistics: Statistics {
        state.withLock { $0.statistics }
    }

    /// Visits recorded and not yet written.
    public var pendingVisits: Int {
        state.withLock { state in state.buffer.count + state.ready.reduce(0) { $0 + $1.count } }
    }

    private func runWriter() {
        var stopDeadline: ContinuousClock.Instant?
        while true {
            let (batches, stopping, deadline) = state.withLock { state in
                if case .flush(let batch) = state.buffer.tick(now: now()) { state.ready.append(batch) }
                if state.stopping, let batch = state.buffer.drain() { state.ready.append(batch) }
                return (state.ready, state.stopping, state.buffer.nextDeadline)
            }
            if stopping, stopDeadline == nil { stopDeadline = now() + Self.stopRetryLimit }

            let written = writeInOrder(batches)
            state.withLock { state in state.ready.removeFirst(written) }

            if written == batches.count {
                if stopping { break }
                waitUntil(deadline)
            } else if let stopDeadline, now() >= stopDeadline {
                let lost = batches[written...].reduce(0) { $0 + $1.count }
                logger.error("giving up on writes at stop: visits lost", metadata: ["visits.lost": "\(lost)"])
                break
            } else {
                waitUntil(now() + Self.retryDelay)
            }
        }
        state.withLock { $0.writerEnded = true }
        finished.signal()
    }

    /// Writes batches oldest first and stops at the first failure, so visits are never reordered;
    /// answers how many were written.
    private func writeInOrder(_ batches: [VisitBatch]) -> Int {
        for (index, batch) in batches.enumerated() {
            let started = ContinuousClock.now
            do {
                try store.write(batch)
            } catch {
                logger.warning(
                    "batch write failed, will retry",
                    metadata: ["flush.visits": "\(batch.count)", "error": "\(error)"])
                state.withLock { state in
                    state.statistics.failedWrites += 1
                    state.statistics.lastError = "\(error)"
                }
                return index
            }
            logger.debug(
                "batch written",
                metadata: ["flush.visits": "\(batch.count)", "flush.duration": "\(ContinuousClock.now - started)"])
            state.withLock { state in
                state.statistics.visitsWritten += batch.count
                state.statistics.batchesWritten += 1
            }
        }
        return batches.count
    }

    private func waitUntil(_ instant: ContinuousClock.Instant) {
        let remaining = instant - now()
        guard remaining > .zero else { return }
        let nanoseconds = remaining.components.seconds * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000
        _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(nanoseconds)))
    }
}
