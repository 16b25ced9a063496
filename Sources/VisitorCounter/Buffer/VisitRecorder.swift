import Dispatch
import Foundation
import Logging
import Synchronization

/// Takes visits from any number of request threads and writes them in batches on a thread of its own,
/// through whatever the database does meanwhile.
///
/// ``record(_:)`` holds a lock only long enough to add to the ``VisitBuffer``, and never waits for the
/// database or any file. The writer thread takes batches out under the same lock and writes them
/// after releasing it. A batch that fails stays in the buffer and is tried again after a back-off
/// (``RetryPolicy``); the buffer keeps at most `bufferLimit` rows and counts visits beyond them without
/// rows. ``stop()`` writes everything buffered or, when the database cannot take it, appends it to the
/// worker's ``SpillFile``; spill files found at the start are replayed first. Failures and
/// degradations go to the ``AuditLog``.
public final class VisitRecorder: Sendable {
    /// Figures about the buffer and the writer, for logs, tests, health and metrics.
    public struct Statistics: Sendable, Equatable {
        public var visitsRecorded = 0
        public var visitsWritten = 0
        public var batchesWritten = 0
        public var failedWrites = 0
        /// Failed writes since the last one that worked.
        public var consecutiveFailures = 0
        /// Visits counted without keeping their row, because the buffer was at its bound.
        public var visitsWithoutRows = 0
        /// Visits written to the spill file at a stop.
        public var spilledVisits = 0
        /// Visits from spill files written to the database by this worker.
        public var replayedVisits = 0
        public var bufferedVisits = 0
        public var bufferedRows = 0
        /// When the oldest visit still held was answered.
        public var oldestBufferedVisit: Date?
        /// When the last batch was written.
        public var lastWrite: Date?
        /// When the writer thread last went round its loop: it does at least every flush interval
        /// unless it is stuck (a write waits out the busy timeout at most).
        public var lastPass: Date?
        /// How long successful writes took.
        public var writeLatency = LatencyHistogram()
        public var lastError: String?

        public init() {}
    }

    public struct Configuration: Sendable {
        public var batchSize: Int
        public var flushInterval: Duration
        /// The most rows held in memory; visits beyond are counted without rows.
        public var bufferLimit: Int
        public var retry: RetryPolicy
        /// How long ``VisitRecorder/stop()`` writes batches before it spills the rest.
        public var stopWriteLimit: Duration
        /// How long ``VisitRecorder/stop()`` goes on trying the database and the spill file, from the
        /// stop, before it gives the visits up as lost.
        public var stopRetryLimit: Duration
        /// This worker's number, for the spill file's name and the audit log.
        public var worker: Int
        /// Whether bots' requests count as visits (`--count-bots`).
        public var countsBots = false

        public static let defaultBufferLimit = 50_000

        public init(
            batchSize: Int, flushInterval: Duration, bufferLimit: Int = defaultBufferLimit, retry: RetryPolicy = .standard,
            stopWriteLimit: Duration = .seconds(15), stopRetryLimit: Duration = .seconds(30), worker: Int = 0
        ) {
            self.stopWriteLimit = stopWriteLimit
            self.batchSize = batchSize
            self.flushInterval = flushInterval
            self.bufferLimit = bufferLimit
            self.retry = retry
            self.stopRetryLimit = stopRetryLimit
            self.worker = worker
        }
    }

    private struct State {
        var buffer: VisitBuffer
        var stopping = false
        /// Set when the writer thread has ended: nothing recorded after this is ever written.
        var writerEnded = false
        var statistics = Statistics()
        /// Degradations seen on the request path, for the writer to put in the audit log.
        var degradations: [(event: AuditLog.Event, time: Date, held: Int)] = []
    }

    private let state: Mutex<State>
    private let store: VisitorStore
    private let configuration: Configuration
    private let spill: SpillFile?
    private let audit: AuditLog?
    private let logger: Logger
    private let publish: @Sendable (Statistics) -> Void
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Signalled when a batch is ready, a degradation happened or a stop is asked for.
    private let wakeUp = DispatchSemaphore(value: 0)
    /// Signalled once by the writer thread when it has written everything and ended.
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    private let publishing = Mutex(())

    /// - Parameters:
    ///   - spill: where ``stop()`` puts what it cannot write; `nil` to keep trying the database instead.
    ///   - audit: where failures and degradations are recorded besides `logger`.
    ///   - publish: called by the writer with fresh figures after every pass, at least every flush interval.
    public init(
        store: VisitorStore,
        configuration: Configuration,
        spill: SpillFile? = nil,
        audit: AuditLog? = nil,
        logger: Logger,
        publish: @escaping @Sendable (Statistics) -> Void = { _ in },
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.store = store
        self.configuration = configuration
        self.spill = spill
        self.audit = audit
        self.logger = logger
        self.publish = publish
        self.now = now
        self.state = Mutex(
            State(
                buffer: VisitBuffer(
                    batchSize: configuration.batchSize, flushInterval: configuration.flushInterval,
                    rowLimit: configuration.bufferLimit, countsBots: configuration.countsBots, now: now())))
    }

    public convenience init(store: VisitorStore, batchSize: Int, flushInterval: Duration, logger: Logger) {
        self.init(store: store, configuration: Configuration(batchSize: batchSize, flushInterval: flushInterval), logger: logger)
    }

    /// Starts the writer thread; call once.
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in runWriter() }
        thread.name = "visit-writer"
        thread.start()
    }

    /// Buffers a visit. Never waits for the database or a file.
    public func record(_ visit: Visit) {
        let instant = now()
        let (action, tooLate) = state.withLock { state -> (VisitBuffer.Action, Bool) in
            state.statistics.visitsRecorded += 1
            if state.writerEnded { return (.none, true) }
            let action = state.buffer.append(visit, now: instant)
            if state.buffer.isCountingWithoutRows { state.statistics.visitsWithoutRows += 1 }
            switch action {
            case .startedCountingWithoutRows:
                state.degradations.append((.rowsDropped, visit.time, state.buffer.visitsHeld))
            case .resumedKeepingRows:
                state.degradations.append((.rowsKeptAgain, visit.time, state.buffer.visitsHeld))
            case .none, .batchReady:
                break
            }
            return (action, false)
        }
        if tooLate { logger.error("visit recorded after the writer stopped: it will not be written") }
        if action != .none { wakeUp.signal() }
    }

    /// Writes everything buffered, or spills it, and ends the writer thread; returns when the visits
    /// are on disk. It writes for up to ``Configuration/stopWriteLimit`` and spills what is left; if
    /// the spill fails too, it gives up after ``Configuration/stopRetryLimit`` (plus at most one
    /// write's busy timeout) and logs the visits as lost.
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
        state.withLock { state in
            var statistics = state.statistics
            statistics.bufferedVisits = state.buffer.visitsHeld
            statistics.bufferedRows = state.buffer.rowsHeld
            statistics.oldestBufferedVisit = state.buffer.oldestVisit
            return statistics
        }
    }

    /// Visits recorded and not yet written.
    public var pendingVisits: Int {
        state.withLock { $0.buffer.visitsHeld }
    }

    // MARK: - The writer thread

    private func runWriter() {
        var retryAt: ContinuousClock.Instant?
        var replayAt: ContinuousClock.Instant? = spill != nil ? now() : nil
        var replayFailures = 0
        var checkpointAt = now()
        var forgetKeysAt = now()
        var stopStarted: ContinuousClock.Instant?
        while true {
            auditDegradations()
            state.withLock { $0.statistics.lastPass = Date() }
            publishNow()
            let stopping = state.withLock { $0.stopping }
            if stopping, stopStarted == nil { stopStarted = now() }
            // Spill files left by an earlier stop, on a timer of their own so that a file that cannot
            // be replayed never holds up the writing of new visits.
            if let due = replayAt, !stopping, now() >= due {
                do {
                    try replaySpills()
                    replayAt = nil
                } catch {
                    replayFailures += 1
                    let delay = configuration.retry.delay(afterFailures: replayFailures, random: Double.random(in: 0..<1))
                    replayAt = now() + delay
                    audit(.init(
                        event: .spillReplayFailed, worker: configuration.worker, visits: 0, error: "\(error)",
                        action: "replaying the spill files failed \(replayFailures) time(s); next try in \(Self.seconds(delay)) s"))
                }
            }
            if !stopping, let retryAt, now() < retryAt {
                waitUntil(min(retryAt, replayAt ?? retryAt))
                continue
            }

            // The day's visitor keys must go after two days even when no batch comes to delete them.
            if !stopping, now() >= forgetKeysAt {
                forgetKeysAt = now() + .seconds(3600)
                do {
                    try store.forgetOldKeys()
                } catch {
                    logger.warning("deleting old visitor keys failed, will try again", metadata: ["error": "\(error)"])
                    forgetKeysAt = now() + .seconds(60)
                }
            }

            // At a stop, batches are written for up to `stopWriteLimit`; what is left then is spilled.
            if let stopStarted, now() >= stopStarted + configuration.stopWriteLimit {
                spillEverything(after: StopTimeout(), deadline: stopStarted + configuration.stopRetryLimit)
                break
            }
            guard let batch = state.withLock({ $0.buffer.takeBatch(now: now(), draining: $0.stopping) }) else {
                if stopping { break }
                waitUntil(min(state.withLock { $0.buffer.nextDeadline }, replayAt ?? .now + .seconds(3600)))
                continue
            }
            let startedWrite = ContinuousClock.now
            do {
                try store.write(batch)
            } catch {
                state.withLock { $0.buffer.batchFailed() }
                if let stopStarted {
                    spillEverything(after: error, deadline: stopStarted + configuration.stopRetryLimit)
                    break
                }
                retryAt = now() + failed(visits: batch.count, error: error)
                continue
            }
            let duration = ContinuousClock.now - startedWrite
            let recovered = state.withLock { state -> Int in
                state.buffer.batchWritten()
                state.statistics.visitsWritten += batch.count
                state.statistics.batchesWritten += 1
                state.statistics.lastWrite = Date()
                state.statistics.writeLatency.record(duration)
                defer { state.statistics.consecutiveFailures = 0 }
                return state.statistics.consecutiveFailures
            }
            logger.debug("batch written", metadata: ["flush.visits": "\(batch.count)", "flush.duration": "\(duration)"])
            if recovered > 0 {
                retryAt = nil
                audit(.init(
                    event: .writeRecovered, worker: configuration.worker, visits: batch.count,
                    action: "written after \(recovered) failed attempts"), level: .notice)
            }
            audit?.flushPending()
            if now() >= checkpointAt, !checkpointIfLarge() {
                // Readers held it up for the whole busy timeout: let them be for a while.
                checkpointAt = now() + .seconds(30)
            }
        }
        publishNow()
        state.withLock { $0.writerEnded = true }
        finished.signal()
    }

    /// Publishes the current figures; the writer calls this after every pass, and the worker calls it
    /// on a timer too, since a pass can wait out the busy timeout. One at a time, so that an older
    /// snapshot never overwrites a newer one.
    public func publishNow() {
        publishing.withLock { _ in publish(statistics) }
    }

    /// Why a stop spilled visits it could have written: it ran out of time.
    private struct StopTimeout: Error, CustomStringConvertible {
        var description: String { "the stop ran out of time to write every batch" }
    }

    /// Counts a failed write, records it, and answers how long to wait before the next try.
    private func failed(visits: Int, error: Error) -> Duration {
        let (failures, held) = state.withLock { state in
            state.statistics.failedWrites += 1
            state.statistics.consecutiveFailures += 1
            state.statistics.lastError = "\(error)"
            return (state.statistics.consecutiveFailures, state.buffer.visitsHeld)
        }
        let delay = configuration.retry.delay(afterFailures: failures, random: Double.random(in: 0..<1))
        audit(.init(
            event: .writeFailed, worker: configuration.worker, visits: visits, error: "\(error)",
            action: "writing a batch failed \(failures) time(s) in a row; \(held) visits kept in memory; next try in \(Self.seconds(delay)) s"))
        return delay
    }

    /// At a stop the database failed (or time ran out): puts everything held into the spill file. If
    /// that fails too, tries the spill file and the database in turn until `deadline`, then gives the
    /// visits up. The spill has one ID throughout, so whichever of the tries lands, it counts once.
    private func spillEverything(after writeError: Error, deadline: ContinuousClock.Instant) {
        guard let all = state.withLock({ $0.buffer.takeAll() }) else { return }
        let id = UUID().uuidString
        var lastError = writeError
        var attempt = 0
        while true {
            attempt += 1
            if let spill {
                do {
                    try spill.append(all, id: id, worker: configuration.worker)
                    state.withLock { $0.statistics.spilledVisits += all.count }
                    audit(.init(
                        event: .spilled, worker: configuration.worker, visits: all.count, error: "\(writeError)",
                        action: "the database could not be written at stop: visits appended to \(spill.path), replayed at the next start"))
                    return
                } catch {
                    lastError = error
                    audit(.init(
                        event: .spillFailed, worker: configuration.worker, visits: all.count, error: "\(error)",
                        action: "retrying the database and the spill file until the stop deadline"), level: .error)
                }
            }
            if attempt > 1 || spill == nil {
                do {
                    try store.write(all, spillID: id)
                    state.withLock { $0.statistics.visitsWritten += all.count }
                    return
                } catch {
                    lastError = error
                }
            }
            if now() >= deadline {
                let countries = all.countryCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                audit(.init(
                    event: .visitsLost, worker: configuration.worker, visits: all.count, error: "\(lastError)",
                    action: "gave up at stop; these visits are not in the database, by country: \(countries)"), level: .critical)
                return
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    private func replaySpills() throws {
        for file in try SpillFile.all(database: store.path) {
            if state.withLock({ $0.stopping }) { return }
            guard let replay = try file.replay(into: store) else { continue }
            state.withLock { $0.statistics.replayedVisits += replay.visits }
            var action = "\(replay.batches) spilled batch(es) written, the file removed"
            if replay.alreadyReplayed > 0 { action += "; \(replay.alreadyReplayed) already written by an earlier replay" }
            if replay.damagedLines > 0 { action += "; \(replay.damagedLines) damaged line(s) moved to \(file.path).rejected" }
            audit(.init(event: .spillReplayed, worker: configuration.worker, visits: replay.visits, action: action),
                  level: replay.damagedLines > 0 ? .error : .notice)
        }
    }

    private func auditDegradations() {
        let degradations = state.withLock { state in
            defer { state.degradations = [] }
            return state.degradations
        }
        for degradation in degradations {
            let action = degradation.event == .rowsDropped
                ? "the buffer holds \(configuration.bufferLimit) rows, its bound: visits are counted in the totals without their rows until writes catch up"
                : "writes caught up: visits are kept with their rows again"
            audit(.init(event: degradation.event, time: degradation.time, worker: configuration.worker,
                        visits: degradation.held, action: action))
        }
    }

    /// Answers `false` when a checkpoint was due and did not get to the end.
    private func checkpointIfLarge() -> Bool {
        do {
            return try store.checkpointIfLarge() != .heldUp
        } catch {
            logger.warning("WAL checkpoint failed", metadata: ["error": "\(error)", "wal.bytes": "\(store.walSize())"])
            return false
        }
    }

    private func audit(_ entry: AuditLog.Entry, level: Logger.Level = .warning) {
        if let audit {
            audit.record(entry, level: level)
        } else {
            AuditLog.log(entry, level: level, to: logger)
        }
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", duration.inSeconds)
    }

    private func waitUntil(_ instant: ContinuousClock.Instant) {
        let remaining = instant - now()
        guard remaining > .zero else { return }
        _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(remaining.inNanoseconds)))
    }
}
