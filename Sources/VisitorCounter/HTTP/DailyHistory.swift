import Synchronization

/// The daily rollup as `/api/sys/stats/daily` reads it, without letting it tie up the request threads.
///
/// Each range's answer is kept for the stats period, as the other stats are, so a page that asks again
/// costs nothing. A range not kept is read from the database by at most ``maxConcurrentReads`` threads
/// of the worker at once; a request past that gets ``Busy`` (a `503` with `Retry-After`) at once
/// instead of waiting for one of GRDB's readers. A burst of distinct ranges then holds at most that
/// many threads, and the rest stay free for `GET /`, which never reads the database.
public final class DailyHistory: Sendable {
    /// More reads of ranges not kept are under way than the bound allows.
    public struct Busy: Error, CustomStringConvertible {
        /// Seconds after which a retry is likely to be read (or answered from what is kept).
        public let retryAfter: Int
        public var description: String { "too many daily history reads at once" }
    }

    private struct Key: Hashable {
        var from: Int
        var to: Int
    }

    private struct State {
        var reading = 0
        var answers: [Key: (days: [DayStats], until: ContinuousClock.Instant)] = [:]
    }

    public let maxConcurrentReads: Int
    private let period: Duration
    private let read: @Sendable (Int, Int) throws -> [DayStats]
    private let state = Mutex(State())

    /// The most ranges kept at once: about 40 KB each for a year with 10 countries a day, so a few
    /// tens of MB at most per worker, and a flood of distinct ranges cannot grow it further.
    public static let maxKeptRanges = 1000

    /// The bound for a worker with `threads` request threads: a quarter of them, at least 1 and at
    /// most 4 (GRDB opens 5 readers, and the stats cache needs one).
    public static func defaultConcurrentReads(threads: Int) -> Int { min(4, max(1, threads / 4)) }

    public init(period: Duration, maxConcurrentReads: Int, read: @escaping @Sendable (Int, Int) throws -> [DayStats]) {
        self.period = period
        self.maxConcurrentReads = maxConcurrentReads
        self.read = read
    }

    /// The days from `from` to `to` (days since 1970-01-01), kept or read now; throws ``Busy`` past the bound.
    public func days(from: Int, to: Int) throws -> [DayStats] {
        let key = Key(from: from, to: to)
        let now = ContinuousClock.now
        let kept: [DayStats]? = try state.withLock { state in
            if let answer = state.answers[key], answer.until > now { return answer.days }
            guard state.reading < maxConcurrentReads else {
                throw Busy(retryAfter: max(1, Int(period.components.seconds)))
            }
            state.reading += 1
            return nil
        }
        if let kept { return kept }
        defer { state.withLock { $0.reading -= 1 } }
        let days = try read(from, to)
        state.withLock { state in
            if state.answers.count >= Self.maxKeptRanges {
                state.answers = state.answers.filter { $0.value.until > now }
                if state.answers.count >= Self.maxKeptRanges { state.answers.removeAll() }
            }
            state.answers[key] = (days, now + period)
        }
        return days
    }
}
