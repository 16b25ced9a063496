/// The visits a worker has answered but not yet written, as a state machine without threads or clocks.
///
/// Every method takes the current time and answers what to do next, so the flush rules are tested
/// with made-up instants: a batch is due when it holds `batchSize` visits, when `flushInterval` has
/// passed since the last flush, and at shutdown (``drain()``).
public struct VisitBuffer: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// What the caller must do after a call.
    public enum Action: Sendable, Equatable {
        case none
        case flush(VisitBatch)
    }

    public let batchSize: Int
    public let flushInterval: Duration
    private var pending: VisitBatch
    private var lastFlush: Instant

    public init(batchSize: Int, flushInterval: Duration, now: Instant) {
        precondition(batchSize > 0, "batchSize must be positive")
        precondition(flushInterval > .zero, "flushInterval must be positive")
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.pending = VisitBatch()
        self.pending.visits.reserveCapacity(batchSize)
        self.lastFlush = now
    }

    /// The number of visits waiting.
    public var count: Int { pending.count }

    /// When ``tick(now:)`` will next have something to do.
    public var nextDeadline: Instant { lastFlush + flushInterval }

    /// Adds a visit; answers `.flush` when the buffer has reached `batchSize`.
    public mutating func append(_ visit: Visit, now: Instant) -> Action {
        pending.append(visit)
        return pending.count >= batchSize ? .flush(takeBatch(now: now)) : .none
    }

    /// Answers `.flush` when `flushInterval` has passed since the last flush and visits are waiting.
    ///
    /// An interval that passes with nothing waiting counts as a flush, so a visit that arrives after a
    /// quiet spell waits one interval rather than being written on its own at once.
    public mutating func tick(now: Instant) -> Action {
        guard now >= nextDeadline else { return .none }
        guard !pending.isEmpty else {
            lastFlush = now
            return .none
        }
        return .flush(takeBatch(now: now))
    }

    /// Hands out everything waiting, for shutdown; `nil` when nothing is.
    public mutating func drain() -> VisitBatch? {
        guard !pending.isEmpty else { return nil }
        defer { pending = VisitBatch() }
        return pending
    }

    private mutating func takeBatch(now: Instant) -> VisitBatch {
        lastFlush = now
        var next = VisitBatch()
        next.visits.reserveCapacity(batchSize)
        swap(&next, &pending)
        return next
    }
}
