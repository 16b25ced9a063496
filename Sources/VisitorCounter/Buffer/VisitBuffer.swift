import Foundation

/// The visits a worker has answered but not yet written, as a state machine without threads or clocks.
///
/// Request threads ``append(_:now:)`` visits; the writer takes batches with ``takeBatches(now:draining:)``
/// and reports back with ``batchWritten()`` or ``batchFailed()``. Every method takes the current time
/// and answers what happened, so the rules are tested with made-up instants:
///
/// - A batch is due when it holds `batchSize` visits, when `flushInterval` has passed since the last
///   one was closed, and at shutdown (`draining`).
/// - While writes fail, closed batches wait in order; a small batch is merged into the one before it
///   as long as that stays within `batchSize` rows, so their number stays bounded too. A batch the
///   writer has tried is never grown: its commit may have reached the database even though the
///   answer was lost (a failover, a dropped connection), and the retry must carry the same journal
///   span, which the store then finds written and skips, not a longer one that it cannot tell apart.
/// - When several closed batches wait (the database was away, or the writer fell behind), the writer
///   takes as many of them as fit in ``largestBatch`` rows, for one transaction: its fixed cost (round
///   trips, the commit's flush) is then shared by more visits, so the writer's rate rises with the
///   backlog. Batches it has tried are taken again as they were, the same ones together.
/// - At most `rowLimit` rows are held. Beyond that a visit is still counted (its batch's totals and
///   per-country counts grow by one) but its row is not kept: the counts stay exact in a few bytes per
///   country while the memory stays bounded.
public struct VisitBuffer: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// What ``append(_:now:)`` changed that the caller must act on.
    public enum Action: Sendable, Equatable {
        case none
        /// A full batch is ready: wake the writer.
        case batchReady
        /// The row bound was reached: from now on visits are counted without rows.
        case startedCountingWithoutRows
        /// Rows are kept again after a spell at the bound.
        case resumedKeepingRows
    }

    public let batchSize: Int
    /// The most rows taken at once when batches wait: ``backlogBatches`` times `batchSize` unless told.
    public let largestBatch: Int
    /// How many batches' worth of rows the writer takes at once from a backlog, by default.
    public static let backlogBatches = 10
    public let flushInterval: Duration
    public let rowLimit: Int
    private var filling = VisitBatch()
    /// Closed batches waiting for the writer, oldest first.
    private var ready: [VisitBatch] = []
    /// The batches the writer holds, between ``takeBatches(now:draining:)`` and its report.
    private var inFlight: [VisitBatch]?
    /// How many of the first of `ready` went back there together after a failed write: they must be
    /// taken again together, and as they are.
    private var triedTogether = 0
    private var lastClosed: Instant
    /// Rows held in every batch, in flight included.
    public private(set) var rowsHeld = 0
    /// Visits held in every batch, with rows or without.
    public private(set) var visitsHeld = 0
    /// Visits held that are in no journal.
    public private(set) var unjournaledHeld = 0
    public private(set) var isCountingWithoutRows = false

    /// Which requests are bots' (``VisitSorting``).
    public let sorting: VisitSorting
    /// The local days of the visits counted without a row (the store's zone).
    private var days: LocalCalendar.Days

    public init(
        batchSize: Int, flushInterval: Duration, rowLimit: Int = .max, largestBatch: Int? = nil, sorting: VisitSorting,
        now: Instant, calendar: LocalCalendar = .utc
    ) {
        self.sorting = sorting
        self.days = LocalCalendar.Days(calendar)
        precondition(batchSize > 0, "batchSize must be positive")
        precondition(flushInterval > .zero, "flushInterval must be positive")
        precondition(rowLimit > 0, "rowLimit must be positive")
        self.batchSize = batchSize
        let backlog = batchSize.multipliedReportingOverflow(by: Self.backlogBatches)
        self.largestBatch = max(batchSize, largestBatch ?? (backlog.overflow ? .max : backlog.partialValue))
        self.flushInterval = flushInterval
        self.rowLimit = rowLimit
        self.lastClosed = now
        self.filling.visits.reserveCapacity(min(batchSize, rowLimit))
    }

    /// When a partly filled batch is next due.
    public var nextDeadline: Instant { lastClosed + flushInterval }

    /// When the oldest visit held was answered; `nil` when none is held.
    public var oldestVisit: Date? {
        ((inFlight ?? []).map(\.oldestVisit) + [ready.first?.oldestVisit, filling.oldestVisit]).compactMap { $0 }.min()
    }

    /// How `visit` is held, decided once for the journal and the batch alike: a bot's request (unless
    /// ``sorting`` counts bots) is counted in `bots` only and never kept as a row, since no store keeps its row;
    /// any other visit keeps its row while fewer than `rowLimit` rows are held, and is counted without
    /// it beyond. Stores write what batches hold and decide nothing.
    public func kind(of visit: Visit) -> JournalRecord.Kind {
        if visit.ignored { return .ignored }
        return kind(setApart: sorting.setsApart(visit))
    }

    /// ``kind(of:)`` for a visit that ``VisitSorting/setsApart(_:)`` looked at already: the recorder does
    /// that before it takes the buffer's lock, so the look at the user agent holds up no other thread.
    public func kind(setApart: Bool) -> JournalRecord.Kind {
        if setApart { return .botWithoutRow }
        return rowsHeld < rowLimit ? .row : .withoutRow
    }

    /// Adds a visit as ``kind(of:)`` sorts it.
    public mutating func append(_ visit: Visit, now: Instant, journal: JournalSpan? = nil) -> Action {
        append(visit, as: kind(of: visit), now: now, journal: journal)
    }

    /// Adds a visit as `kind`, which ``kind(of:)`` answered for it under the same lock (and the
    /// journal recorded). `journal` is where the visit's record went in the worker's journal, `nil`
    /// when it is in none.
    public mutating func append(_ visit: Visit, as kind: JournalRecord.Kind, now: Instant, journal: JournalSpan? = nil) -> Action {
        visitsHeld += 1
        if let journal {
            filling.addJournal(journal)
        } else {
            filling.unjournaled += 1
            unjournaledHeld += 1
        }
        switch kind {
        case .botWithoutRow:
            filling.countBot(visit)
            return .none
        case .ignored:
            filling.countIgnored(visit)
            return .none
        case .withoutRow:
            filling.countWithoutRow(visit, on: days.day(visit.time))
            guard !isCountingWithoutRows else { return .none }
            isCountingWithoutRows = true
            return .startedCountingWithoutRows
        case .row:
            break
        }
        filling.append(visit)
        rowsHeld += 1
        if isCountingWithoutRows {
            isCountingWithoutRows = false
            return .resumedKeepingRows
        }
        guard filling.visits.count >= batchSize else { return .none }
        closeFilling(now: now)
        return .batchReady
    }

    /// The next batch to write, oldest first, or `nil` when none is due: ``takeBatches(now:draining:)``
    /// joined into one.
    public mutating func takeBatch(now: Instant, draining: Bool = false) -> VisitBatch? {
        VisitBatch(joining: takeBatches(now: now, draining: draining))
    }

    /// The closed batches to write next in one transaction, oldest first, or none when none is due;
    /// the writer then holds them until it calls ``batchWritten()`` or ``batchFailed()``. Those that
    /// wait behind the oldest join it while the rows stay within ``largestBatch``; batches tried before
    /// come back as they were tried, the same ones together.
    ///
    /// They come apart so that the caller joins them (``VisitBatch/init(joining:)``) after it lets go
    /// of the lock that request threads wait for: joining copies every row.
    ///
    /// With `draining` (shutdown) the partly filled batch is due at once. An interval that passes with
    /// nothing waiting restarts the timer, so a visit after a quiet spell waits one interval rather than
    /// being written on its own at once.
    public mutating func takeBatches(now: Instant, draining: Bool = false) -> [VisitBatch] {
        precondition(inFlight == nil, "one batch at a time: report the last one first")
        if draining || now >= nextDeadline {
            if filling.isEmpty { lastClosed = now } else { closeFilling(now: now) }
        }
        guard !ready.isEmpty else { return [] }
        var taken = triedTogether
        if taken == 0 {
            var rows = ready[0].visits.count
            taken = 1
            while taken < ready.count, rows + ready[taken].visits.count <= largestBatch {
                rows += ready[taken].visits.count
                taken += 1
            }
        }
        let batches = Array(ready.prefix(taken))
        ready.removeFirst(taken)
        triedTogether = 0
        inFlight = batches
        return batches
    }

    /// The batches from ``takeBatches(now:draining:)`` are in the database.
    public mutating func batchWritten() {
        guard let batches = inFlight else { preconditionFailure("no batch in flight") }
        for batch in batches {
            rowsHeld -= batch.visits.count
            visitsHeld -= batch.count
            unjournaledHeld -= batch.unjournaled
        }
        inFlight = nil
    }

    /// The batches from ``takeBatches(now:draining:)`` could not be written: they go back to the
    /// front, to be taken together again.
    public mutating func batchFailed() {
        guard let batches = inFlight else { preconditionFailure("no batch in flight") }
        ready.insert(contentsOf: batches, at: 0)
        triedTogether = batches.count
        inFlight = nil
    }

    /// Everything held, in one batch, at a stop that gives it up; `nil` when nothing is.
    public mutating func takeAll() -> VisitBatch? {
        precondition(inFlight == nil, "report the batch in flight first")
        var all = VisitBatch()
        for batch in ready + [filling] { all.merge(batch) }
        ready = []
        triedTogether = 0
        filling = VisitBatch()
        rowsHeld = 0
        visitsHeld = 0
        unjournaledHeld = 0
        return all.isEmpty ? nil : all
    }

    private mutating func closeFilling(now: Instant) {
        lastClosed = now
        if let last = ready.indices.last, last >= triedTogether,
            ready[last].visits.count + filling.visits.count <= batchSize
        {
            ready[last].merge(filling)
        } else {
            ready.append(filling)
        }
        filling = VisitBatch()
        filling.visits.reserveCapacity(max(0, min(batchSize, rowLimit - rowsHeld)))
    }
}
