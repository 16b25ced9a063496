import CZlib
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The daily rollup as `/api/sys/stats/daily` answers it, without letting it tie up the request threads
/// or the worker's memory.
///
/// Each range's answer is kept for the stats period, as the other stats are, so a page that asks again
/// costs nothing: what is kept is the answer's bytes as they go out (and their gzip copy), not the days,
/// so a repeated request is neither encoded nor compressed again. What is kept is bounded by bytes
/// (``maxKeptBytes``); an entry goes when its period is over, whether or not the cache is full.
///
/// A range not kept is read from the database by at most ``maxConcurrentReads`` threads of the worker at
/// once; a request past that gets ``Busy`` (a `503` with `Retry-After`) at once instead of waiting for
/// one of GRDB's readers. A burst of distinct ranges then holds at most that many threads, and the rest
/// stay free for `GET /`, which never reads the database.
public final class DailyHistory: Sendable {
    /// More reads of ranges not kept are under way than the bound allows.
    public struct Busy: Error, CustomStringConvertible {
        /// Seconds after which a retry is likely to be read (or answered from what is kept).
        public let retryAfter: Int
        public let reason: String
        public var description: String { reason }

        public init(retryAfter: Int, reason: String = "too many daily history reads at once") {
            self.retryAfter = retryAfter
            self.reason = reason
        }
    }

    /// One range's answer, encoded once: the JSON, and its gzip copy for the clients that take it.
    public struct Answer: Sendable {
        public let plain: Response
        /// `nil` if zlib failed.
        public let gzip: Response?

        /// `{"days": [...]}` for `days`, with its bytes made once.
        public init(days: [DayStats]) {
            var response = Response.text(Self.json(days), contentType: "application/json")
            response.headers.append((name: "Vary", value: "Accept-Encoding"))
            self.plain = response.prepared()
            // zlib's fastest level, nginx's own default: for a year of 150 countries a day (0.7 MB) it
            // takes a tenth of the best level's time (60 ms against 530 ms here) for 17% more bytes,
            // and a miss pays it on a request thread.
            self.gzip = Gzip.compress(Array(response.body.utf8), level: Z_BEST_SPEED).map { compressed in
                var gzip = response
                gzip.headers.append((name: "Content-Encoding", value: "gzip"))
                gzip.body = ""
                gzip.binaryBody = compressed
                return gzip.prepared()
            }
        }

        /// The text `JSON` writes for `{"days": [day.asJSON, …]}`, written straight into one buffer: a
        /// year of 150 countries a day is 55,000 members, and building them as `JSON` values first cost
        /// more time and memory than the read.
        static func json(_ days: [DayStats]) -> String {
            var text: [UInt8] = []
            text.reserveCapacity(days.reduce(16) { $0 + 90 + 14 * $1.countries.count })
            func append(_ string: String) { text.append(contentsOf: string.utf8) }
            append(#"{"days": ["#)
            for (index, day) in days.enumerated() {
                if index > 0 { append(", ") }
                append(#"{"date": "#)
                append(JSON.quoted(day.date))
                append(#", "visitors": "#)
                append(String(day.visitors))
                append(#", "unique_visitors": "#)
                append(String(day.uniqueVisitors))
                append(#", "countries": {"#)
                let countries = day.countries.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                for (number, country) in countries.enumerated() {
                    if number > 0 { append(", ") }
                    append(JSON.quoted(country.key))
                    append(": ")
                    append(String(country.value))
                }
                append("}}")
            }
            append("]}")
            return String(decoding: text, as: UTF8.self)
        }

        /// What keeping it costs: the text and bytes each response holds.
        public var bytes: Int {
            [plain, gzip].reduce(0) { total, response in
                guard let response else { return total }
                return total + response.body.utf8.count + (response.binaryBody?.count ?? 0)
                    + (response.encoded?.bytes.count ?? 0)
            }
        }

        /// The answer to send to a client that takes gzip (`acceptsGzip`) or not.
        public func response(acceptsGzip: Bool) -> Response {
            acceptsGzip ? gzip ?? plain : plain
        }
    }

    private struct Key: Hashable {
        var from: Int
        var to: Int
    }

    private struct Entry {
        var answer: Answer
        var until: ContinuousClock.Instant
    }

    /// The answers kept, and the order they came in: all are kept for the same period, so the order
    /// they came in is the order they expire in, and the oldest is the first to go when bytes run out.
    private struct State {
        var reading = 0
        var answers: [Key: Entry] = [:]
        /// Keys in the order they were kept, from `head` on; a key may come again after it was dropped
        /// and kept anew, so an item is dropped only if its `until` is still the entry's.
        var order: [(key: Key, until: ContinuousClock.Instant)] = []
        var head = 0
        var bytes = 0
        var sweepScheduled = false

        /// Drops the answers whose period is over, and then the oldest until `room` more bytes fit
        /// within `budget`.
        mutating func drop(expiredAt now: ContinuousClock.Instant, makingRoomFor room: Int = 0, within budget: Int) {
            while head < order.count {
                let (key, until) = order[head]
                guard let entry = answers[key], entry.until == until else {
                    head += 1  // dropped or replaced already
                    continue
                }
                guard until <= now || bytes + room > budget else { break }
                answers[key] = nil
                bytes -= entry.answer.bytes
                head += 1
            }
            // The dropped items' slots are given back once they are half of the array.
            if head > 32 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }

        var oldestUntil: ContinuousClock.Instant? {
            order[head...].lazy.compactMap { item in self.answers[item.key].flatMap { $0.until == item.until ? item.until : nil } }
                .first
        }
    }

    public let maxConcurrentReads: Int
    /// The most bytes of answers kept at once (``Answer/bytes``).
    public let maxKeptBytes: Int
    private let period: Duration
    private let read: @Sendable (Int, Int) throws -> [DayStats]
    private let state = Mutex(State())

    /// 8 MiB per worker. A year with 150 countries a day is about 0.6 MB of JSON and 1.4 MB kept (the text,
    /// its bytes as they go out, and the gzip copy), so this keeps the few ranges that pages ask again and
    /// again, such as the last year and the last month, several times over. A flood of distinct ranges gains
    /// nothing from any size of cache: it is bounded by the reads at once, and this bounds what it leaves.
    public static let defaultMaxKeptBytes = 8 << 20

    /// The bound for a worker with `threads` request threads: a quarter of them, at least 1 and at
    /// most 4 (GRDB opens 5 readers, and the stats cache needs one).
    public static func defaultConcurrentReads(threads: Int) -> Int { min(4, max(1, threads / 4)) }

    public init(
        period: Duration, maxConcurrentReads: Int, maxKeptBytes: Int = DailyHistory.defaultMaxKeptBytes,
        read: @escaping @Sendable (Int, Int) throws -> [DayStats]
    ) {
        self.period = period
        self.maxConcurrentReads = maxConcurrentReads
        self.maxKeptBytes = maxKeptBytes
        self.read = read
    }

    /// The answer for the days from `from` to `to` (days since 1970-01-01), kept or read now; throws
    /// ``Busy`` past the bound.
    public func days(from: Int, to: Int) throws -> Answer {
        let key = Key(from: from, to: to)
        let now = ContinuousClock.now
        let kept: Answer? = try state.withLock { state in
            state.drop(expiredAt: now, within: maxKeptBytes)
            if let entry = state.answers[key] { return entry.answer }
            guard state.reading < maxConcurrentReads else {
                throw Busy(retryAfter: max(1, Int(period.components.seconds)))
            }
            state.reading += 1
            return nil
        }
        if let kept { return kept }
        defer { state.withLock { $0.reading -= 1 } }
        let answer = Answer(days: try read(from, to))
        Self.giveBackFreedMemory()
        let cost = answer.bytes
        guard cost <= maxKeptBytes else { return answer }
        let scheduleSweep = state.withLock { state in
            let now = ContinuousClock.now
            if let old = state.answers.removeValue(forKey: key) { state.bytes -= old.answer.bytes }
            state.drop(expiredAt: now, makingRoomFor: cost, within: maxKeptBytes)
            state.answers[key] = Entry(answer: answer, until: now + period)
            state.order.append((key, now + period))
            state.bytes += cost
            defer { state.sweepScheduled = true }
            return !state.sweepScheduled
        }
        if scheduleSweep { self.scheduleSweep(after: period) }
        return answer
    }

    /// The bytes of the answers kept now, and how many there are.
    public var kept: (bytes: Int, answers: Int) {
        state.withLock { ($0.bytes, $0.answers.count) }
    }

    /// Hands the memory a read and its encoding freed back to the system. glibc keeps what is freed in the
    /// arena of the thread that freed it, and a read of a year with 150 countries makes and frees
    /// megabytes on whichever request thread it ran: without this a burst of distinct ranges left a
    /// worker tens of MB larger, although nothing was kept beyond ``maxKeptBytes``. At most once a
    /// second: a trim walks every arena under its lock, and holds up the other threads' allocations.
    private static func giveBackFreedMemory() {
        let now = MonotonicTime.now()
        let last = lastTrim.load(ordering: .relaxed)
        guard now - last >= 1_000_000_000,
            lastTrim.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
        else { return }
        _ = mallocTrim?(0)
    }

    private static let lastTrim = Atomic<Int64>(0)

    /// glibc's `malloc_trim`, which Swift's Glibc module does not declare; `nil` on another C library.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// Drops the expired answers when the oldest one expires, even if no request comes to do it: an idle
    /// worker does not hold what a burst of requests left. One sweep is pending at most at a time.
    private func scheduleSweep(after delay: Duration) {
        let nanoseconds = max(0, delay.components.seconds) * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds) + 1_000_000)) { [self] in
            let next: Duration? = state.withLock { state in
                let now = ContinuousClock.now
                state.drop(expiredAt: now, within: maxKeptBytes)
                guard let oldest = state.oldestUntil else {
                    state.order = []
                    state.head = 0
                    state.sweepScheduled = false
                    return nil
                }
                return oldest - now
            }
            Self.giveBackFreedMemory()
            if let next { scheduleSweep(after: next) }
        }
    }
}
