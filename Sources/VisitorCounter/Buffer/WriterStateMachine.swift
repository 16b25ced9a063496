/// When a worker's writer thread does what: write, retry after a back-off, replay ended workers'
/// journals, keep the day's keys, checkpoint, and stop within its deadlines. A plain value without
/// threads, I/O or a clock of its own: every event comes with the time, and the answer is the next
/// ``Action``, so the rules are tested with made-up instants (`WriterStateMachineTests`).
///
/// The writer thread runs the action and reports how it went as the next event. Rules:
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
        /// A wait ended: its deadline passed or a batch became ready.
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
        case stop
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

    public let configuration: Configuration
    public private(set) var consecutiveFailures = 0
    public private(set) var replayFailures = 0
    private var retryAt: Instant?
    private var replayAt: Instant
    private var forgetKeysAt: Instant
    private var dayKeysAt: Instant?
    private var checkpointAt: Instant
    private var checkpointDue = false
    public private(set) var stopStarted: Instant?
    private var finalReplayDone = false

    public init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        replayAt = now
        forgetKeysAt = now
        dayKeysAt = configuration.needsDayKeys ? now : nil
        checkpointAt = now
    }

    /// When the last failed write is tried again; `nil` while writes work.
    public var nextRetry: Instant? { retryAt }

    /// Takes `event` at `now` and answers what to do next. `unjournaledHeld` is the number of visits
    /// held that are in no journal: a stop does not leave those behind while `stopRetryLimit` allows.
    public mutating func handle(_ event: Event, now: Instant, unjournaledHeld: Int = 0) -> Action {
        switch event {
        case .tick, .nothingToWrite:
            break
        case .writeSucceeded:
            consecutiveFailures = 0
            retryAt = nil
            checkpointDue = true
        case .writeFailed(let random):
            consecutiveFailures += 1
            let delay = configuration.retry.delay(afterFailures: consecutiveFailures, random: random)
            retryAt = now + delay
            if let stopStarted {
                guard unjournaledHeld > 0 else { return .finish(.leftInJournal) }
                let deadline = stopStarted + configuration.stopRetryLimit
                if now >= deadline { return .finish(.gaveUp) }
                return .wait(until: min(now + delay, deadline))
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
            checkpointDue = false
        case .checkpointHeldUp:
            checkpointDue = false
            checkpointAt = now + Self.checkpointPause
        case .stop:
            if stopStarted == nil {
                stopStarted = now
                // The stop writes at once, whatever back-off a failure before it had set.
                retryAt = nil
            }
        }
        if let stopStarted {
            if case .nothingToWrite = event {
                // Journals of workers that ended meanwhile are written before the stop ends, if there is time.
                guard finalReplayDone else {
                    finalReplayDone = true
                    return now >= stopStarted + configuration.stopWriteLimit ? .finish(.allWritten) : .replay
                }
                return .finish(.allWritten)
            }
            if unjournaledHeld > 0 {
                if now >= stopStarted + configuration.stopRetryLimit { return .finish(.gaveUp) }
            } else if now >= stopStarted + configuration.stopWriteLimit {
                return .finish(.stopTimedOut)
            }
            if let retryAt, now < retryAt { return .wait(until: retryAt) }
            return .write(draining: true)
        }
        // The keys first: visits answered meanwhile would go into the journal without their hash.
        if let dayKeysAt, now >= dayKeysAt { return .refreshDayKeys }
        if now >= replayAt { return .replay }
        if now >= forgetKeysAt { return .forgetOldKeys }
        if let retryAt, now < retryAt { return .wait(until: min(retryAt, nextTimer)) }
        if checkpointDue && now >= checkpointAt { return .checkpoint }
        if case .nothingToWrite(let nextDeadline) = event { return .wait(until: min(nextDeadline, nextTimer)) }
        return .write(draining: false)
    }

    /// The earliest of the timers besides writing.
    private var nextTimer: Instant {
        [replayAt, forgetKeysAt, dayKeysAt].compactMap { $0 }.min()!
    }
}
