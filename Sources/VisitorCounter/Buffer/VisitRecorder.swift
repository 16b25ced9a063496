import Dispatch
import Foundation
import Logging
import Synchronization

/// Takes visits from any number of request threads and writes them in batches on a thread of its own,
/// through whatever the database does meanwhile.
///
/// ``record(_:)`` holds a lock only long enough to copy the visit into the worker's ``VisitJournal``
/// (a `memcpy` into shared memory, no system call) and add it to the ``VisitBuffer``; it never waits
/// for the database or a file. The writer thread takes batches out under the same lock and writes
/// them after releasing it, each with the journal position it reaches, in the same transaction. When
/// the writer is to do what is decided by a ``WriterStateMachine``; this class carries out its actions.
///
/// A batch that fails stays in the buffer and is tried again after a back-off; the buffer keeps at
/// most `bufferLimit` rows and counts visits beyond them without rows. ``stop()`` writes everything
/// buffered; what it cannot write stays in the journal, which the next start replays. Journals of
/// workers that ended and spill files of earlier versions are replayed on a timer of their own.
/// Failures and degradations go to the ``AuditLog``.
public final class VisitRecorder: Sendable {
    struct State {
        var buffer: VisitBuffer
        /// What the writer thread does next; its phase is the one place that says whether a stop was
        /// asked for and since when, how many writes failed in a row and when the next is tried.
        var writer: WriterStateMachine
        /// Set when the writer thread has ended: nothing recorded after this is ever written.
        var writerEnded = false
        var statistics = Statistics()
        /// How far this worker's journal is in the database: the ring may reuse what lies before.
        var journalWritten: UInt64 = 0
        /// Whether the last visit found the journal full, so the audit log says it once per spell.
        var journalFull = false
        /// Degradations seen on the request path, for the writer to put in the audit log.
        var degradations: [(event: AuditLog.Event, time: Date, held: Int)] = []
    }

    let state: Mutex<State>
    let store: any CounterStore
    let configuration: Configuration
    let journal: VisitJournal?
    let audit: AuditLog?
    let logger: Logger
    private let publish: @Sendable (Statistics) -> Void
    let now: @Sendable () -> ContinuousClock.Instant
    /// The visitor-hash keys by day, for journals that keep hashes instead of addresses.
    let dayKeys = Mutex<[Int: [UInt8]]>([:])
    /// Journals and spill files already reported as not replayable, so each is reported once.
    let reportedUntrusted = Mutex<Set<String>>([])
    /// Where the database had this worker's journal when its lost part was found reused, so that the
    /// loss is reported once, not at every retry.
    private let reportedUnrecoverable = Mutex<UInt64?>(nil)
    /// Signalled when a batch is ready, a degradation happened or a stop is asked for.
    private let wakeUp = DispatchSemaphore(value: 0)
    /// Signalled once by the writer thread when it has written everything and ended.
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    private let publishing = Mutex(())

    /// - Parameters:
    ///   - journal: where every visit goes before it is answered, to outlive the process; `nil` keeps
    ///     visits in memory only (tests, or a journal that could not be made).
    ///   - audit: where failures and degradations are recorded besides `logger`.
    ///   - publish: called by the writer with fresh figures after every pass, at least every flush interval.
    public init(
        store: any CounterStore,
        configuration: Configuration,
        journal: VisitJournal? = nil,
        audit: AuditLog? = nil,
        logger: Logger,
        publish: @escaping @Sendable (Statistics) -> Void = { _ in },
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.store = store
        self.configuration = configuration
        self.journal = journal
        self.audit = audit
        self.logger = logger
        self.publish = publish
        self.now = now
        let writer = WriterStateMachine.Configuration(
            retry: configuration.retry, stopWriteLimit: configuration.stopWriteLimit,
            stopRetryLimit: configuration.stopRetryLimit, needsDayKeys: journal != nil && configuration.storeIP != .full)
        self.state = Mutex(
            State(
                buffer: VisitBuffer(
                    batchSize: configuration.batchSize, flushInterval: configuration.flushInterval,
                    rowLimit: configuration.bufferLimit, sorting: configuration.sorting, now: now(),
                    calendar: store.calendar),
                writer: WriterStateMachine(configuration: writer, now: now())))
    }

    public convenience init(store: any CounterStore, batchSize: Int, flushInterval: Duration, logger: Logger) {
        self.init(store: store, configuration: Configuration(batchSize: batchSize, flushInterval: flushInterval), logger: logger)
    }

    /// Starts the writer thread; call once, before the first visit.
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // The day's keys that exist already, so the first visits go into the journal with their hash;
        // the writer makes the missing ones first thing.
        if journal != nil, configuration.storeIP != .full, let keys = try? store.existingDayKeys() {
            dayKeys.withLock { $0 = keys }
        }
        Thread.start(named: "visit-writer") { [self] in runWriter() }
    }

    /// Journals and buffers a visit. Never waits for the database or a file.
    public func record(_ visit: Visit) {
        let instant = now()
        let sealed = seal(visit)
        let setApart = !visit.ignored && configuration.sorting.setsApart(visit)
        let (action, tooLate) = state.withLock { state -> (VisitBuffer.Action, Bool) in
            state.statistics.visitsRecorded += 1
            if state.writerEnded { return (.none, true) }
            let kind: JournalRecord.Kind = visit.ignored ? .ignored : state.buffer.kind(setApart: setApart)
            var span: JournalSpan?
            if let journal {
                var journaled = visit
                journaled.sealed = sealed
                let start = journal.end
                if let end = journal.append(
                    JournalRecord(kind: kind, visit: journaled), written: state.journalWritten)
                {
                    span = JournalSpan(id: journal.id, start: start, end: end)
                    if state.journalFull {
                        state.journalFull = false
                        state.degradations.append((.journalHasRoom, visit.time, state.buffer.visitsHeld))
                    }
                } else if !state.journalFull {
                    state.journalFull = true
                    state.degradations.append((.journalFull, visit.time, state.buffer.visitsHeld))
                }
            }
            if span == nil { state.statistics.visitsNotJournaled += 1 }
            let action = state.buffer.append(visit, as: kind, now: instant, journal: span)
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

    /// What the journal keeps of the visit's address when `--store-ip` is not `full`: the stored form
    /// and the day's visitor hash, worked out here since the journal must not hold the address.
    private func seal(_ visit: Visit) -> Visit.Sealed? {
        guard journal != nil, configuration.storeIP != .full else { return nil }
        let day = store.calendar.day(visit.time)
        let key = dayKeys.withLock { $0[day] }
        return Visit.Sealed(
            storedIP: configuration.storeIP.stored(visit.ip, key: key),
            visitorHash: key.map { BatchPlan.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) })
    }

    /// Writes everything buffered and ends the writer thread; returns when the visits are in the
    /// database or, for those it could not write, in the journal. It writes for up to
    /// ``Configuration/stopWriteLimit``; visits in no journal are tried until
    /// ``Configuration/stopRetryLimit`` (plus at most one write's busy timeout) and then logged as lost.
    public func stop() {
        guard started.load(ordering: .acquiring) else { return }
        let instant = now()
        let alreadyStopping = state.withLock { state in
            defer { state.writer.stop(now: instant) }
            return state.writer.isStopping
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
            statistics.consecutiveFailures = state.writer.consecutiveFailures
            return statistics
        }
    }

    /// Visits recorded and not yet written.
    public var pendingVisits: Int {
        state.withLock { $0.buffer.visitsHeld }
    }

    /// Publishes the current figures; the writer calls this after every pass, and the worker calls it
    /// on a timer too, since a pass can wait out the busy timeout. One at a time, so that an older
    /// snapshot never overwrites a newer one.
    public func publishNow() {
        publishing.withLock { _ in publish(statistics) }
    }

    // MARK: - The writer thread

    private func runWriter() {
        var action = next(after: .tick)
        while true {
            switch action {
            case .write(let draining):
                action = writeNextBatch(draining: draining)
            case .replay:
                action = replayEndedJournals()
            case .refreshDayKeys:
                action = next(after: refreshDayKeys())
            case .forgetOldKeys:
                action = next(after: forgetOldKeys())
            case .checkpoint:
                action = next(after: checkpointIfLarge() ? .checkpointDone : .checkpointHeldUp)
            case .wait(let until):
                waitUntil(until)
                action = next(after: .tick)
            case .finish(let finish):
                finishStop(finish)
                publishNow()
                state.withLock { $0.writerEnded = true }
                finished.signal()
                return
            }
            auditDegradations()
            state.withLock { $0.statistics.lastPass = Date() }
            publishNow()
        }
    }

    /// Hands `event` to the writer's state machine, as of `instant`, and answers its next action. A stop
    /// asked for while the action ran is in the machine's phase already, so the event is answered as the stop's.
    func next(
        after event: WriterStateMachine.Event, at instant: ContinuousClock.Instant? = nil
    ) -> WriterStateMachine.Action {
        let instant = instant ?? now()
        return state.withLock { state in
            let unjournaledHeld = state.buffer.unjournaledHeld
            return state.writer.handle(event, now: instant, unjournaledHeld: unjournaledHeld)
        }
    }

    /// Takes the next due batch and writes it; answers what the writer does next.
    private func writeNextBatch(draining: Bool) -> WriterStateMachine.Action {
        let instant = now()
        // Joined outside the lock, which the request threads wait for: joining copies every row.
        let batches = state.withLock { $0.buffer.takeBatches(now: instant, draining: draining) }
        guard let batch = VisitBatch(joining: batches) else {
            return next(after: .nothingToWrite(nextDeadline: state.withLock { $0.buffer.nextDeadline }))
        }
        let startedWrite = ContinuousClock.now
        do {
            do {
                try store.write(batch)
            } catch StoreError.journalGap(let id, let written, let start)
                where id == journal?.id && written >= 0 && UInt64(written) < start
            {
                try rewriteLostBatches(from: UInt64(written), upTo: start)
                try store.write(batch)
            }
        } catch {
            let held = state.withLock { state -> Int in
                state.buffer.batchFailed()
                state.statistics.failedWrites += 1
                state.statistics.lastError = "\(error)"
                return state.buffer.visitsHeld
            }
            let failedAt = now()
            let action = next(after: .writeFailed(random: .random(in: 0..<1)), at: failedAt)
            let (failures, retryAt) = state.withLock { ($0.writer.consecutiveFailures, $0.writer.nextRetry) }
            let nextTry = retryAt.map { "next try in \(Self.seconds($0 - failedAt)) s" } ?? "next try at once"
            audit(.init(
                event: .writeFailed, worker: configuration.worker, visits: batch.count, error: "\(error)",
                action: "writing a batch failed \(failures) time(s) in a row; \(held) visits kept in memory and the journal; \(nextTry)"))
            return action
        }
        let duration = ContinuousClock.now - startedWrite
        let failuresBefore = state.withLock { state in
            state.buffer.batchWritten()
            if let span = batch.journal { state.journalWritten = span.end }
            state.statistics.visitsWritten += batch.count
            state.statistics.batchesWritten += 1
            state.statistics.lastWrite = Date()
            state.statistics.writeLatency.record(duration)
            return state.writer.consecutiveFailures
        }
        logger.debug("batch written", metadata: ["flush.visits": "\(batch.count)", "flush.duration": "\(duration)"])
        if failuresBefore > 0 {
            audit(.init(
                event: .writeRecovered, worker: configuration.worker, visits: batch.count,
                action: "written after \(failuresBefore) failed attempts"), level: .notice)
        }
        audit?.flushPending()
        return next(after: .writeSucceeded)
    }

    /// Writes again what the database lost of this worker's journal, from `written`, where the
    /// database has it, up to `start`, where the next batch begins: batches this worker saw committed
    /// and the database then lost (an asynchronous standby promoted without them, a backup restored).
    /// Their records are still in the journal unless the ring has reused that part; from now on it
    /// cannot. Throws what a write threw, or the gap itself when the journal no longer holds them all.
    private func rewriteLostBatches(from written: UInt64, upTo start: UInt64) throws {
        guard let journal else { return }
        // Visits recorded from now on leave the lost part of the ring alone.
        state.withLock { $0.journalWritten = min($0.journalWritten, written) }
        let lost = JournalReplay.batches(
            of: journal, from: written, upTo: start, batchSize: configuration.batchSize, sorting: configuration.sorting,
            calendar: store.calendar)
        guard !lost.damaged else {
            let gap = StoreError.journalGap(journal: journal.id, written: Int64(written), batchStart: start)
            if reportedUnrecoverable.withLock({ reported in
                defer { reported = written }
                return reported != written
            }) {
                audit(.init(
                    event: .visitsLost, worker: configuration.worker, visits: 0, error: "\(gap)",
                    action: "the journal's ring has reused the part the database lost: its visits, how many is not known, cannot be written again"),
                    level: .critical)
            }
            throw gap
        }
        for batch in lost.batches { try store.write(batch) }
        let visits = lost.batches.reduce(0) { $0 + $1.count }
        audit(.init(
            event: .lostBatchesRewritten, worker: configuration.worker, visits: visits,
            error: "the database had this worker's journal written up to \(written), not up to \(start)",
            action: "written again from the journal: batches the database had committed and then lost, as after an asynchronous failover"))
    }

    /// After the writer's last action: says what a stop left behind, and removes the journal when
    /// everything in it is written.
    private func finishStop(_ finish: WriterStateMachine.Finish) {
        let (held, unjournaled, lastError) = state.withLock { state in
            (state.buffer.visitsHeld, state.buffer.unjournaledHeld, state.statistics.lastError)
        }
        guard held > 0 else {
            if let journal { removeWrittenJournal(journal) }
            return
        }
        let reason = finish == .stopTimedOut ? "the stop ran out of time to write every batch" : lastError ?? "the write failed"
        if held > unjournaled, let journal {
            state.withLock { $0.statistics.spilledVisits += held - unjournaled }
            audit(.init(
                event: .leftInJournal, worker: configuration.worker, visits: held - unjournaled, error: reason,
                action: "not written at the stop: they stay in \(journal.path), which the next start writes"))
        }
        if unjournaled > 0 {
            let lost = state.withLock { $0.buffer.takeAll() }
            let countries = (lost?.countryCounts ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: " ")
            audit(.init(
                event: .visitsLost, worker: configuration.worker, visits: unjournaled, error: reason,
                action: "gave up at stop; these visits were in no journal and are not in the database; all held, by country: \(countries)"),
                level: .critical)
        }
    }

    /// Removes the journal once the database holds all of it. A database that lost batches this worker
    /// saw committed (a backup restored, an asynchronous standby promoted) has them written again first,
    /// though no visit waits: nothing else would notice before the journal was gone. When the database
    /// cannot say or take them, the journal stays, and the next start writes it from the database's
    /// progress, as it does a crashed worker's.
    private func removeWrittenJournal(_ journal: VisitJournal) {
        let written = state.withLock { $0.journalWritten }
        do {
            let progress = try store.journalProgress(journal.id)
            if progress < written { try rewriteLostBatches(from: progress, upTo: written) }
        } catch {
            audit(.init(
                event: .leftInJournal, worker: configuration.worker, visits: 0, error: "\(error)",
                action: "the database could not be checked for, or given, all of \(journal.path): it stays, and the next start writes what the database lacks"))
            return
        }
        do {
            try journal.remove()
            try store.forgetJournal(journal.id)
        } catch {
            logger.warning("cannot remove the written journal; the next start does", metadata: ["error": "\(error)"])
        }
    }

    func audit(_ entry: AuditLog.Entry, level: Logger.Level = .warning) {
        if let audit {
            audit.record(entry, level: level)
        } else {
            AuditLog.log(entry, level: level, to: logger)
        }
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", duration.inSeconds)
    }

    private func waitUntil(_ instant: ContinuousClock.Instant) {
        let remaining = instant - now()
        guard remaining > .zero else { return }
        _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(remaining.inNanoseconds)))
    }
}
