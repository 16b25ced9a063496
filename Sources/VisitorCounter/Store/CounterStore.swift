import Foundation

/// What the writer, the stats cache, the routes and the commands need of the database, whichever it
/// is: ``SQLiteStore`` (one SQLite file, the embedded default) or ``PostgresStore`` (one PostgreSQL
/// database that the counters of several hosts share).
///
/// Both keep the same tables with the same names and meanings, and the same invariant: `total_visitors`
/// equals the rows in `visitors` plus `visitors_without_rows` plus `visitors_deleted`, and the sum of
/// the countries. Every method blocks; none is called on a request thread except ``daily(from:to:)``.
public protocol CounterStore: AnyObject, Sendable {
    /// Where this host's own files go, as a path prefix: the journals (`PREFIX.journal-N-ID`), spill
    /// files and the audit log (`PREFIX.audit.jsonl`). The SQLite file itself, or a name in the state
    /// directory for a database on another host.
    var localFiles: String { get }
    /// The zone whose local days the rollup, the day keys, the daily reads and retention count: the one
    /// the database records (``RecordedTimeZone``).
    var calendar: LocalCalendar { get }

    /// Writes a batch in one transaction: its rows, its counts, its unique visitors and, for a journal's
    /// batch, how far that journal is written. Answers `false` when the batch (a spill file's, by
    /// `spillID`, or a journal's span) was written before and nothing was done.
    func write(_ batch: VisitBatch, at time: Date, spillID: String?) throws -> Bool

    /// The visitor-hash keys of yesterday, today and tomorrow that exist already.
    func existingDayKeys(now: Date) throws -> [Int: [UInt8]]
    /// The visitor-hash keys of yesterday, today and tomorrow, made if missing.
    func dayKeys(now: Date) throws -> [Int: [UInt8]]
    /// How far the journal `id` has been written: the position after its last record in the database.
    func journalProgress(_ id: String) throws -> UInt64
    /// Forgets the progress of a journal that has been removed.
    func forgetJournal(_ id: String) throws

    /// The totals and the recent windows as of `now`, in one snapshot.
    func stats(now: Date) throws -> VisitorStats
    /// The totals and the last `days` days of the daily rollup, in one snapshot.
    func statsAndDays(now: Date, days: Int) throws -> (stats: VisitorStats, days: [DayStats])
    /// The daily rollup from day `from` to day `to`, both included, days without visits as zeros.
    func daily(from: Int, to: Int) throws -> [DayStats]
    /// Each day's pages and referrers from day `from` to day `to`, both included, days without as empty.
    func dailyPages(from: Int, to: Int) throws -> [DayPages]
    /// Raw visits with `timestamp` from `after` (exclusive, with `id` breaking ties) to `before`
    /// (exclusive), oldest first, at most `limit`: one page of an export.
    func visitPage(after: VisitCursor, before: String, limit: Int) throws -> [ExportedVisit]
    /// Every day of the rollup between the dates `first` and `last` (`YYYY-MM-DD`, both included) with
    /// its countries, oldest first, countries by count: `body` is called once per day and country.
    func forEachDailyRow(first: String, last: String, _ body: (DailyRow) throws -> Void) throws

    /// Deletes the visitor-hash keys and hashes of the days before yesterday.
    func forgetOldKeys(now: Date) throws
    /// Deletes at most `limit` rows older than `cutoff` and adds them to `visitors_deleted`.
    func deleteRows(olderThan cutoff: Date, limit: Int) throws -> Int
    /// Whatever upkeep the engine needs between batches (SQLite: a `TRUNCATE` checkpoint when the WAL
    /// has grown); `.heldUp` when it was due and did not get to the end.
    func upkeep() throws -> StoreUpkeep
    /// The number of rows in `visitors`: a full scan, for checks and tests.
    func visitorRowCount() throws -> Int
    /// Counts the daily rollup again in `zone` from the rows kept, and records `zone` (`rebuild-days`).
    func rebuildDays(in zone: LocalCalendar) throws -> RebuiltDays
}

/// What ``CounterStore/upkeep()`` did.
public enum StoreUpkeep: Sendable, Equatable {
    case notNeeded
    case done
    /// Readers of old snapshots held it up past its time limit.
    case heldUp
}

/// Where an export's last page ended: `timestamp` and `id` together are unique and ordered.
public struct VisitCursor: Sendable, Equatable {
    public var timestamp: String
    public var id: Int64

    public init(timestamp: String, id: Int64) {
        self.timestamp = timestamp
        self.id = id
    }
}

/// One row of `visitors` as the export writes it.
public struct ExportedVisit: Sendable, Equatable {
    public var id: Int64
    public var timestamp: String
    public var ip: String?
    public var countryCode: String
    public var country: String
    public var userAgent: String
    /// The page's path, `/` for rows from before pages were counted.
    public var path: String = Visit.indexPath
    /// The referrer's host, if any.
    public var referrer: String?
}

/// One day of the rollup with one of its countries; a day without countries comes once with `nil`.
public struct DailyRow: Sendable, Equatable {
    public var date: String
    public var visitors: Int
    public var uniqueVisitors: Int
    public var countryCode: String?
    public var countryVisitors: Int?
}

extension CounterStore {
    @discardableResult
    public func write(_ batch: VisitBatch, at time: Date = Date()) throws -> Bool {
        try write(batch, at: time, spillID: nil)
    }

    @discardableResult
    public func write(_ batch: VisitBatch, spillID: String?) throws -> Bool {
        try write(batch, at: Date(), spillID: spillID)
    }

    public func existingDayKeys() throws -> [Int: [UInt8]] { try existingDayKeys(now: Date()) }
    public func dayKeys() throws -> [Int: [UInt8]] { try dayKeys(now: Date()) }
    public func stats() throws -> VisitorStats { try stats(now: Date()) }
    public func statsAndDays(days: Int) throws -> (stats: VisitorStats, days: [DayStats]) {
        try statsAndDays(now: Date(), days: days)
    }
    public func forgetOldKeys() throws { try forgetOldKeys(now: Date()) }
    public func deleteRows(olderThan cutoff: Date) throws -> Int { try deleteRows(olderThan: cutoff, limit: 1000) }

}
