import Foundation

/// Visits handed from the buffer to the writer in one piece.
///
/// A batch may also carry visits counted without a row: when the buffer is at its memory bound, a visit
/// still adds to the totals and to its country, but its row (address, user agent, time) is not kept.
/// Request threads only append here, under the buffer's lock; the per-country counts of the rows are
/// summed by the writer (``countryCounts``), off the request path.
public struct VisitBatch: Sendable, Equatable {
    /// The rows to insert into `visitors`.
    public var visits: [Visit]
    /// Visits per local day (the store's ``LocalCalendar``) and country among those counted without a row.
    public var countsWithoutRows: [DayCountry: Int]
    /// Visits per minute (Unix time / 60) among those counted without a row, for the recent windows.
    public var minutesWithoutRows: [Int: Int] = [:]
    /// Visits per day and path among those counted without a row; at most ``BatchPlan/maxKeysPerDay``
    /// keys, past which they count under ``BatchPlan/otherKey``.
    public var pagesWithoutRows: [DayKey: Int] = [:]
    /// Visits per day and referrer host among those counted without a row, bounded the same way.
    public var referrersWithoutRows: [DayKey: Int] = [:]
    /// Requests from bots, counted in `bots` only: a bot's request never has a row (``VisitBuffer/kind(of:)``).
    public var botsWithoutRows = 0
    /// The owner's requests (``Visit/ignored``), counted in `ignored` only, never with a row.
    public var ignored = 0
    /// When the oldest visit in the batch was answered: how long the batch has waited, for health checks.
    public var oldestVisit: Date?
    /// The part of a ``VisitJournal`` that holds this batch's visits: its transaction records the
    /// journal as written up to the span's end.
    public var journal: JournalSpan?
    /// Visits in the batch that are in no journal (it was full, or there is none): lost if the process dies.
    public var unjournaled = 0

    public init(
        visits: [Visit] = [], countsWithoutRows: [DayCountry: Int] = [:], minutesWithoutRows: [Int: Int] = [:],
        oldestVisit: Date? = nil
    ) {
        self.visits = visits
        self.countsWithoutRows = countsWithoutRows
        self.minutesWithoutRows = minutesWithoutRows
        self.oldestVisit = oldestVisit ?? visits.lazy.map(\.time).min()
    }

    /// A batch of rows.
    public init(counting visits: [Visit]) {
        self.init(visits: visits)
    }

    /// `batches` as one, in their order (their journal spans follow each other); `nil` when there are none.
    public init?(joining batches: [VisitBatch]) {
        guard var joined = batches.first else { return nil }
        joined.visits.reserveCapacity(batches.reduce(0) { $0 + $1.visits.count })
        for batch in batches.dropFirst() { joined.merge(batch) }
        self = joined
    }

    /// Visits counted in the totals that have no row in ``visits``.
    public var visitsWithoutRows: Int { countsWithoutRows.values.reduce(0, +) }

    /// Every request the batch counts, with a row or without, bots' and the owner's included.
    public var count: Int { visits.count + visitsWithoutRows + botsWithoutRows + ignored }
    public var isEmpty: Bool { count == 0 }

    /// Visits per country code, those with a row and those without.
    public var countryCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (key, visitors) in countsWithoutRows { counts[key.code, default: 0] += visitors }
        for visit in visits { counts[visit.countryCode, default: 0] += 1 }
        return counts
    }

    /// Adds a visit with its row.
    mutating func append(_ visit: Visit) {
        visits.append(visit)
        if oldestVisit == nil { oldestVisit = visit.time }
    }

    /// Adds a visit to the counts only, on its day in `calendar`.
    mutating func countWithoutRow(_ visit: Visit, in calendar: LocalCalendar = .utc) {
        countWithoutRow(visit, on: calendar.day(visit.time))
    }

    /// Adds a visit to the counts only, on local day `day`.
    mutating func countWithoutRow(_ visit: Visit, on day: Int) {
        countsWithoutRows[DayCountry(day: day, code: visit.countryCode), default: 0] += 1
        Self.add(DayKey(day: day, key: visit.path), to: &pagesWithoutRows)
        if let referrer = visit.referrer { Self.add(DayKey(day: day, key: referrer), to: &referrersWithoutRows) }
        minutesWithoutRows[visit.minute, default: 0] += 1
        if oldestVisit == nil { oldestVisit = visit.time }
    }

    /// Adds a bot's request, counted in `bots` only.
    mutating func countBot(_ visit: Visit) {
        botsWithoutRows += 1
        if oldestVisit == nil { oldestVisit = visit.time }
    }

    /// Adds a request of the owner, counted in `ignored` only.
    mutating func countIgnored(_ visit: Visit) {
        ignored += 1
        if oldestVisit == nil { oldestVisit = visit.time }
    }

    /// Adds a visit that was not sorted when it was answered (a row of a spill file, or of a journal
    /// an earlier version wrote): with its row, or counted in `bots` only, as ``VisitBuffer`` sorts new ones.
    mutating func appendUnsorted(_ visit: Visit, sorting: VisitSorting) {
        if sorting.setsApart(visit) { countBot(visit) } else { append(visit) }
    }

    /// Adds `other`'s rows and counts to this batch.
    mutating func merge(_ other: VisitBatch) {
        visits += other.visits
        countsWithoutRows.merge(other.countsWithoutRows, uniquingKeysWith: +)
        minutesWithoutRows.merge(other.minutesWithoutRows, uniquingKeysWith: +)
        for (key, visitors) in other.pagesWithoutRows { Self.add(key, visitors, to: &pagesWithoutRows) }
        for (key, visitors) in other.referrersWithoutRows { Self.add(key, visitors, to: &referrersWithoutRows) }
        botsWithoutRows += other.botsWithoutRows
        ignored += other.ignored
        oldestVisit = [oldestVisit, other.oldestVisit].compactMap { $0 }.min()
        unjournaled += other.unjournaled
        if let span = other.journal { addJournal(span) }
    }

    /// Adds `visitors` to `key`, or to the day's ``BatchPlan/otherKey`` when `counts` holds
    /// ``BatchPlan/maxKeysPerDay`` keys already: a scanner's million paths cannot grow it further.
    static func add(_ key: DayKey, _ visitors: Int = 1, to counts: inout [DayKey: Int]) {
        if counts[key] == nil, counts.count >= BatchPlan.maxKeysPerDay {
            counts[DayKey(day: key.day, key: BatchPlan.otherKey), default: 0] += visitors
        } else {
            counts[key, default: 0] += visitors
        }
    }

    /// Extends the batch's journal span by `span`, which follows it.
    mutating func addJournal(_ span: JournalSpan) {
        if let current = journal {
            precondition(current.id == span.id && current.end == span.start, "journal spans must follow each other")
            journal = JournalSpan(id: current.id, start: current.start, end: span.end)
        } else {
            journal = span
        }
    }
}

/// Positions `start..<end` of the journal `id`.
public struct JournalSpan: Sendable, Equatable {
    public var id: String
    public var start: UInt64
    public var end: UInt64

    public init(id: String, start: UInt64, end: UInt64) {
        self.id = id
        self.start = start
        self.end = end
    }
}
