/// When a worker's writer thread does what: write, retry after a back-off, replay ended workers'
/// journals, keep the day's keys, checkpoint, and stop within its deadlines. A plain value without
/// threads, I/O or a clock of its own: every event comes with the time, and the answer is the next
/// ``Action``, so the rules are tested with made-up instants (`WriterStateMachineTests`).
///
/// The writer thread runs the action and reports how it went as the next event; ``stop(now:)`` is not
/// an event but a change of ``Phase`` that the next event is answered in. Rules:
/// - A failed write waits out the ``RetryPolicy``'s back-off before the next write; a batch ready
///   meanwhile does not cut it short.
/// - Replays (journals of ended workers, old spill files) run on a timer of their own, with their own
///   back-off, so one that cannot be done never holds up the writing of new visits; they run at the
///   start and every ``Configuration-swift.struct/replayInterval``.
/// - At a stop, batches are written (the partly filled one too) until none is left, then the journals
///   of workers that ended are replayed once more, all within `stopWriteLimit`. When a write fails at
///   the stop, what is held stays in the journal for the next start; visits in no journal are
///   written, or tried again, until `stopRetryLimit` and then reported lost.
public struct WriterStateMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public enum Event: Sendable, Equatable {
        /// A wait ended: its deadline passed, a batch became ready or a stop was asked for.
        case tick
        /// A write was due and the buffer had no batch; the partly filled one is due at `nextDeadline`.
        case nothingToWrite(nextDeadline: Instant)
        case writeSucceeded
        /// `random` in 0..<1 for the back-off's jitter.
        case writeFailed(random: Double)
        case replaySucceeded
        case replayFailed(random: Double)
        case dayKeysRefreshed
        case dayKeysFailed
        case oldKeysForgotten
        case oldKeysFailed
        /// A checkpoint was held up by readers for the whole busy timeout.
        case checkpointHeldUp
        case checkpointDone
    }

    public enum Action: Sendable, Equatable {
        /// Take the next due batch (`draining`: the partly filled one is due too) and write it.
        case write(draining: Bool)
        /// Replay the journals of ended workers and old spill files.
        case replay
        /// Fetch the visitor-hash keys of yesterday, today and tomorrow, for journals that cannot keep
        /// full addresses.
        case refreshDayKeys
        /// Delete the keys and hashes of the days before yesterday.
        case forgetOldKeys
        /// Checkpoint the WAL if it has grown.
        case checkpoint
        /// Sleep until `until`, or until woken by a ready batch or a stop.
        case wait(until: Instant)
        /// End the writer thread.
        case finish(Finish)
    }

    public enum Finish: Sendable, Equatable {
        /// Everything held was written.
        case allWritten
        /// A write failed at the stop: what is held stays in the journal for the next start.
        case leftInJournal
        /// The stop wrote for `stopWriteLimit` and the rest stays in the journal.
        case stopTimedOut
        /// Visits in no journal could not be written by `stopRetryLimit`: they are lost.
        case gaveUp
    }

    public struct Configuration: Sendable {
        public var retry: RetryPolicy
        public var stopWriteLimit: Duration
        public var stopRetryLimit: Duration
        /// Whether the journal keeps hashes, so the day's keys are needed before a visit comes.
        public var needsDayKeys: Bool
        /// How often journals left by ended workers are looked for, after the replay at the start.
        public var replayInterval: Duration

        public init(
            retry: RetryPolicy, stopWriteLimit: Duration, stopRetryLimit: Duration, needsDayKeys: Bool = false,
            replayInterval: Duration = .seconds(5)
        ) {
            self.retry = retry
            self.stopWriteLimit = stopWriteLimit
            self.stopRetryLimit = stopRetryLimit
            self.needsDayKeys = needsDayKeys
            self.replayInterval = replayInterval
        }
    }

    /// How often the old keys are deleted, and how soon again after a failure.
    public static let forgetKeysInterval: Duration = .seconds(3600)
    public static let forgetKeysRetry: Duration = .seconds(60)
    /// How often the day's keys are fetched: well before a day begins, its key exists.
    public static let dayKeysInterval: Duration = .seconds(600)
    public static let dayKeysRetry: Duration = .seconds(5)
    /// How long checkpoints pause after one was held up by readers.
    public static let checkpointPause: Duration = .seconds(30)

    /// Where the writer is. It alone says how many writes failed in a row, when the next is tried and
    /// whether a stop was asked for, and since when.
    public enum Phase: Sendable, Equatable {
        /// Writes work: each batch is written when it is due.
        case running
        /// The last `failures` writes failed; the next waits for the back-off's end, `until`.
        case retrying(until: Instant, failures: Int)
        /// A stop was asked for: every batch is due, the partly filled one too, until none is left.
        case stopping(Stop)
    }

    /// A stop under way.
    public struct Stop: Sendable, Equatable {
        /// When the stop was asked for: its deadlines count from here.
        public var since: Instant
        /// Writes failed in a row, from before the stop too, for the back-off.
        public var failures: Int
        /// When the next write is tried after a failure in the stop; `nil`: at once. The stop writes at
        /// once whatever back-off a failure before it had set.
        public var retryAt: Instant?
        /// Whether the journals of ended workers were replayed once more after the last batch.
        public var finalReplayDone: Bool
    }

    /// Whether a checkpoint is due: after a write, not before the pause that readers holding up the
    /// last one set.
    private enum Checkpoint: Equatable {
        case notDue(pausedUntil: Instant)
        case due(at: Instant)
    }

    public let configuration: Configuration
    public private(set) var phase = Phase.running
    public private(set) var replayFailures = 0
    private var replayAt: Instant
    private var forgetKeysAt: Instant
    private var dayKeysAt: Instant?
    private var checkpoint: Checkpoint

    public init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        replayAt = now
        forgetKeysAt = now
        dayKeysAt = configuration.needsDayKeys ? now : nil
        checkpoint = .notDue(pausedUntil: now)
    }

    /// Writes failed since the last one that worked.
    public var consecutiveFailures: Int {
        switch phase {
        case .running: 0
        case .retrying(_, let failures): failures
        case .stopping(let stop): stop.failures
        }
    }

    /// When the last failed write is tried again; `nil` while writes work, and in a stop until a write
    /// in it fails.
    public var nextRetry: Instant? {
        switch phase {
        case .running: nil
        case .retrying(let until, _): until
        case .stopping(let stop): stop.retryAt
        }
    }

    /// When the ended workers' journals are looked for again.
    public var nextReplay: Instant { replayAt }

    public var isStopping: Bool {
        if case .stopping = phase { true } else { false }
    }

    /// When a stop's writing ends, `stopWriteLimit` after it was asked for; `nil` while not stopping.
    /// Replays under way end there too.
    public var stopWriteDeadline: Instant? {
        guard case .stopping(let stop) = phase else { return nil }
        return stop.since + configuration.stopWriteLimit
    }

    /// A stop is asked for at `now`: the next event is answered as the stop's. Asking again changes nothing.
    public mutating func stop(now: Instant) {
        switch phase {
        case .running:
            phase = .stopping(Stop(since: now, failures: 0, retryAt: nil, finalReplayDone: false))
        case .retrying(_, let failures):
            phase = .stopping(Stop(since: now, failures: failures, retryAt: nil, finalReplayDone: false))
        case .stopping:
            break
        }
    }

    /// Takes `event` at `now` and answers what to do next. `unjournaledHeld` is the number of visits
    /// held that are in no journal: a stop does not leave those behind while `stopRetryLimit` allows.
    public mutating func handle(_ event: Event, now: Instant, unjournaledHeld: Int = 0) -> Action {
        take(event, now: now)
        guard case .stopping(var stop) = phase else { return nextWhileRunning(after: event, now: now) }
        defer { phase = .stopping(stop) }
        return next(stopping: &stop, after: event, now: now, unjournaledHeld: unjournaledHeld)
    }

    /// What `event` changes: the phase after a write, and the timers after the other work.
    private mutating func take(_ event: Event, now: Instant) {
        switch event {
        case .tick, .nothingToWrite:
            break
        case .writeSucceeded:
            switch phase {
            case .running, .retrying: phase = .running
            case .stopping(var stop):
                stop.failures = 0
                stop.retryAt = nil
                phase = .stopping(stop)
            }
            if case .notDue(let pausedUntil) = checkpoint { checkpoint = .due(at: pausedUntil) }
        case .writeFailed(let random):
            let failures = consecutiveFailures + 1
            let retryAt = now + configuration.retry.delay(afterFailures: failures, random: random)
            switch phase {
            case .running, .retrying: phase = .retrying(until: retryAt, failures: failures)
            case .stopping(var stop):
                stop.failures = failures
                stop.retryAt = retryAt
                phase = .stopping(stop)
            }
        case .replaySucceeded:
            replayFailures = 0
            replayAt = now + configuration.replayInterval
        case .replayFailed(let random):
            replayFailures += 1
            replayAt = now + configuration.retry.delay(afterFailures: replayFailures, random: random)
        case .dayKeysRefreshed:
            dayKeysAt = now + Self.dayKeysInterval
        case .dayKeysFailed:
            dayKeysAt = now + Self.dayKeysRetry
        case .oldKeysForgotten:
            forgetKeysAt = now + Self.forgetKeysInterval
        case .oldKeysFailed:
            forgetKeysAt = now + Self.forgetKeysRetry
        case .checkpointDone:
            checkpoint = .notDue(pausedUntil: now)
        case .checkpointHeldUp:
            checkpoint = .notDue(pausedUntil: now + Self.checkpointPause)
        }
    }

    /// Running or retrying: the timers that are due first, then a checkpoint, then the next batch.
    private func nextWhileRunning(after event: Event, now: Instant) -> Action {
        // The keys first: visits answered meanwhile would go into the journal without their hash.
        if let dayKeysAt, now >= dayKeysAt { return .refreshDayKeys }
        if now >= replayAt { return .replay }
        if now >= forgetKeysAt { return .forgetOldKeys }
        // A batch ready during the back-off does not cut it short.
        if case .retrying(let until, _) = phase, now < until { return .wait(until: min(until, nextTimer)) }
        if case .due(let at) = checkpoint, now >= at { return .checkpoint }
        if case .nothingToWrite(let nextDeadline) = event { return .wait(until: min(nextDeadline, nextTimer)) }
        return .write(draining: false)
    }

    /// Stopping: write until nothing is left, then replay the ended workers' journals once more, within
    /// the stop's deadlines; a failed write leaves what is journaled for the next start.
    private func next(stopping stop: inout Stop, after event: Event, now: Instant, unjournaledHeld: Int) -> Action {
        let writeDeadline = stop.since + configuration.stopWriteLimit
        let retryDeadline = stop.since + configuration.stopRetryLimit
        if case .nothingToWrite = event {
            // Journals of workers that ended meanwhile are written before the stop ends, if there is time.
            guard stop.finalReplayDone || now >= writeDeadline else {
                stop.finalReplayDone = true
                return .replay
            }
            stop.finalReplayDone = true
            return .finish(.allWritten)
        }
        if unjournaledHeld > 0 {
            if now >= retryDeadline { return .finish(.gaveUp) }
        } else if case .writeFailed = event {
            return .finish(.leftInJournal)
        } else if now >= writeDeadline {
            return .finish(.stopTimedOut)
        }
        if let retryAt = stop.retryAt, now < retryAt { return .wait(until: min(retryAt, retryDeadline)) }
        return .write(draining: true)
    }

    /// The earliest of the timers besides writing.
    private var nextTimer: Instant {
        [replayAt, forgetKeysAt, dayKeysAt].compactMap { $0 }.min()!
    }
}
