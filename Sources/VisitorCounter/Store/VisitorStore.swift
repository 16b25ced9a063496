import Foundation
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The SQLite file that every worker process of the counter writes its batches into.
///
/// Opened in WAL mode with `synchronous=NORMAL` and a busy timeout, so readers never wait for the
/// writer and writers of several processes queue for the lock instead of failing. Every write is one
/// `BEGIN IMMEDIATE` transaction that takes the write lock up front: a transaction that started as a
/// reader and then tried to write could fail with `SQLITE_BUSY` without waiting.
public final class VisitorStore: Sendable {
    public let path: String
    /// Whether requests from bots (``BotClassifier``) are counted as visits; by default they are
    /// counted apart, in `visitor_stats.bots`, and not stored.
    public let countsBots: Bool
    /// What of each address is stored (`--store-ip`).
    public let storeIP: StoreIPMode
    private let configuration: Configuration
    private let busyTimeout: TimeInterval
    private let schemaVersion: Int
    /// The open connections; `nil` after a failed write, so the next use opens the file afresh.
    private let pool: Mutex<DatabasePool?>

    /// How long a write waits for another process's transaction before failing with `SQLITE_BUSY`.
    public static let defaultBusyTimeout: TimeInterval = 5
    /// The size of the WAL file past which a write is followed by a `TRUNCATE` checkpoint.
    public static let walCheckpointBytes = 32 << 20

    /// Opens (creating if needed) and migrates the database at `path`.
    public convenience init(
        path: String, busyTimeout: TimeInterval = defaultBusyTimeout, countsBots: Bool = false, storeIP: StoreIPMode = .full
    ) throws {
        try self.init(
            path: path, busyTimeout: busyTimeout, schemaVersion: VisitorStore.schemaVersion, countsBots: countsBots,
            storeIP: storeIP)
    }

    /// Opens the database migrated up to `schemaVersion` only: tests make older files with it.
    init(path: String, busyTimeout: TimeInterval, schemaVersion: Int, countsBots: Bool = false, storeIP: StoreIPMode = .full) throws {
        self.countsBots = countsBots
        self.storeIP = storeIP
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "visitors"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        self.path = path
        self.configuration = configuration
        self.busyTimeout = busyTimeout
        self.schemaVersion = schemaVersion
        self.pool = Mutex(nil)
        _ = try currentPool()
    }

    /// The open pool, or a newly opened one after ``closeAfterFailure()``.
    private func currentPool() throws -> DatabasePool {
        if let pool = pool.withLock({ $0 }) { return pool }
        let opened = try VisitorStore.openPool(path: path, configuration: configuration, timeout: busyTimeout)
        try opened.writeWithoutTransaction { db in try VisitorStore.migrate(db, upTo: schemaVersion) }
        return pool.withLock { pool in
            if let pool { return pool }
            pool = opened
            return opened
        }
    }

    /// Drops the connections, so the next write opens the file again: after the file was made
    /// read-only, replaced or its disk remounted, the old descriptors would go on failing (or writing
    /// to a file that is no longer there).
    private func closeAfterFailure() {
        pool.withLock { $0 = nil }
    }

    /// Opens the pool, retrying while another process holds the lock.
    ///
    /// When several workers open a brand-new file at once, switching it to WAL mode can fail with
    /// `SQLITE_BUSY` straight away: SQLite does not call the busy handler for that step.
    private static func openPool(path: String, configuration: Configuration, timeout: TimeInterval) throws -> DatabasePool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }

    /// How long the per-minute counts are kept: the longest recent window.
    public static let minutesKept = 24 * 60

    /// Writes a batch in one transaction: its rows, its count added to the total, to each of its
    /// countries and to its minutes, and `last_updated` set to `time`; minutes older than a day are
    /// dropped. Bots' requests (unless ``countsBots``) are only added to `bots`. Either all of it is
    /// written or none of it.
    ///
    /// With `spillID`, the batch comes from a spill file: the ID is recorded in the same transaction,
    /// and a batch whose ID is already there is not written again (the answer is then `false`), so a
    /// replay that stopped between its commit and removing the file counts nothing twice.
    @discardableResult
    public func write(_ batch: VisitBatch, at time: Date = Date(), spillID: String? = nil) throws -> Bool {
        guard !batch.isEmpty else { return true }
        do {
            // SQLite goes on writing through the descriptor it opened even after the file was made
            // read-only: respect the file's permissions as they are now.
            guard access(path, W_OK) == 0 else { throw VisitorStoreError.notWritable(path: path) }
            return try write(batch, at: time, spillID: spillID, in: try currentPool())
        } catch {
            closeAfterFailure()
            throw error
        }
    }

    private func write(_ batch: VisitBatch, at time: Date, spillID: String?, in pool: DatabasePool) throws -> Bool {
        let timestamps = batch.visits.map { UTCTimestamp.format($0.time, milliseconds: true) }
        let lastUpdated = UTCTimestamp.format(time)
        var written = true
        try pool.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                if let span = batch.journal, span.end > span.start {
                    let done = try Int64.fetchOne(
                        db, sql: "SELECT written FROM journal_progress WHERE journal = ?", arguments: [span.id]) ?? 0
                    if done >= Int64(span.end) {
                        written = false
                        return .rollback
                    }
                    guard done == Int64(span.start) else {
                        throw VisitorStoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
                    }
                    try db.execute(
                        sql: """
                            INSERT INTO journal_progress (journal, written, updated_at) VALUES (?, ?, ?)
                            ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                            """,
                        arguments: [span.id, Int64(span.end), lastUpdated])
                }
                if let spillID {
                    try db.execute(
                        sql: "INSERT INTO replayed_spills (id, replayed_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                        arguments: [spillID, lastUpdated])
                    guard db.changesCount == 1 else {
                        written = false
                        return .rollback
                    }
                }
                let insertVisit = try db.cachedStatement(
                    sql: """
                        INSERT INTO visitors (ip, user_agent, country, country_code, timestamp)
                        VALUES (?, ?, ?, ?, ?)
                        """)
                let addUnique = try db.cachedStatement(
                    sql: "INSERT INTO daily_uniques (date, hash) VALUES (?, ?) ON CONFLICT (date, hash) DO NOTHING")
                let today = UTCTimestamp.day(time)
                var keys = DailyKeys(today: today)
                var totals = BatchTotals(batch.countsWithoutRows, minutes: batch.minutesWithoutRows)
                var seen = Set<DayHash>()
                for (visit, timestamp) in zip(batch.visits, timestamps) {
                    if !countsBots && BotClassifier.isBot(visit.userAgent) {
                        totals.bots += 1
                        continue
                    }
                    let day = UTCTimestamp.day(visit.time)
                    let key = try keys.key(for: day, in: db)
                    // A visit from a journal that could not keep the address carries what is stored of it.
                    let storedIP = visit.sealed.map(\.storedIP) ?? storeIP.stored(visit.ip, key: key)
                    try insertVisit.insert(visit, ip: storedIP, timestamp: timestamp)
                    totals.add(visit, day: day)
                    let hash = visit.sealed.map(\.visitorHash) ?? key.map { Self.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) }
                    // A visitor seen before in this batch needs no second look in the table.
                    if let hash {
                        if seen.insert(DayHash(day: day, hash: hash)).inserted {
                            try addUnique.execute(arguments: [keys.text(for: day), Int64(bitPattern: hash)])
                            if db.changesCount == 1 { totals.days[day, default: (0, 0)].uniques += 1 }
                        }
                    }
                }
                try totals.write(into: db, oldestMinuteKept: Int((time.timeIntervalSince1970 / 60).rounded(.down)) - Self.minutesKept)
                try keys.forgetOld(in: db)
                try db.execute(
                    sql: """
                        UPDATE visitor_stats SET total_visitors = total_visitors + ?,
                            visitors_without_rows = visitors_without_rows + ?, bots = bots + ?, last_updated = ?
                        WHERE id = 1
                        """,
                    arguments: [
                        batch.count - totals.bots - batch.botsWithoutRows, batch.visitsWithoutRows,
                        totals.bots + batch.botsWithoutRows, lastUpdated,
                    ])
                guard db.changesCount == 1 else { throw VisitorStoreError.missingStatsRow }
                return .commit
            }
        }
        return written
    }

    /// The visitor's hash on a day whose key is `key`: address and user agent, so visitors behind one
    /// address with different browsers count apart.
    public static func visitorHash(ip: String?, userAgent: String, key: [UInt8]) -> UInt64 {
        SipHash.hash(Array("visitor\n\(ip ?? "")\n\(userAgent)".utf8), key: key)
    }

    /// The visitor-hash keys of yesterday, today and tomorrow that exist already, read without waiting
    /// for any writer: what a worker starts with before its writer has made the missing ones.
    public func existingDayKeys(now: Date = Date()) throws -> [Int: [UInt8]] {
        let today = UTCTimestamp.day(now)
        return try currentPool().read { db in
            var found: [Int: [UInt8]] = [:]
            for day in (today - 1)...(today + 1) {
                if let key = try Data.fetchOne(
                    db, sql: "SELECT key FROM daily_keys WHERE date = ?", arguments: [UTCTimestamp.dayText(day)])
                {
                    found[day] = Array(key)
                }
            }
            return found
        }
    }

    /// The visitor-hash keys of yesterday, today and tomorrow as of `now`, made if missing: a worker
    /// whose journal cannot keep full addresses hashes them when it answers.
    public func dayKeys(now: Date = Date()) throws -> [Int: [UInt8]] {
        try currentPool().writeWithoutTransaction { db in
            var found: [Int: [UInt8]] = [:]
            try db.inTransaction(.immediate) {
                let today = UTCTimestamp.day(now)
                var keys = DailyKeys(today: today)
                for day in (today - 1)...(today + 1) { found[day] = try keys.key(for: day, in: db) }
                return .commit
            }
            return found
        }
    }

    /// How far the journal `id` has been written: the position after its last record in the database.
    public func journalProgress(_ id: String) throws -> UInt64 {
        try currentPool().read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT written FROM journal_progress WHERE journal = ?", arguments: [id]) ?? 0)
        }
    }

    /// Forgets the progress of a journal that has been removed.
    public func forgetJournal(_ id: String) throws {
        _ = try currentPool().write { db in
            try db.execute(sql: "DELETE FROM journal_progress WHERE journal = ?", arguments: [id])
        }
    }

    /// How long a checkpoint waits for readers, holding the write lock.
    public var checkpointBusyTimeout: TimeInterval { busyTimeout / 5 }

    /// The size of the WAL file now, in bytes; 0 when there is none.
    public func walSize() -> Int {
        var status = stat()
        return stat(path + "-wal", &status) == 0 ? Int(status.st_size) : 0
    }

    /// What ``checkpointIfLarge(limit:)`` did.
    public enum Checkpoint: Sendable, Equatable {
        case notNeeded
        case done
        /// Readers of old snapshots held it up past the busy timeout.
        case heldUp
    }

    /// Runs a `TRUNCATE` checkpoint when the WAL file has grown past ``walCheckpointBytes``.
    ///
    /// SQLite's automatic checkpoint (after a commit that takes the WAL past 1,000 pages) is passive: it
    /// copies what no reader still needs, and starts the WAL over only when no reader is using it. Under
    /// reads that never pause, that moment may not come and the WAL grows. A `TRUNCATE` checkpoint waits
    /// (up to the busy timeout) for the readers of old snapshots to finish; new readers meanwhile read
    /// the database file itself, so they do not hold it up, and the WAL file is then cut to zero.
    ///
    /// While it waits for those readers it holds the write lock, so other workers' writes wait for it.
    /// It waits at most ``checkpointBusyTimeout`` (a fifth of the writers' busy timeout) and gives up:
    /// a write that comes meanwhile is delayed by at most that, never failed for it.
    @discardableResult
    public func checkpointIfLarge(limit: Int = walCheckpointBytes) throws -> Checkpoint {
        guard walSize() > limit else { return .notNeeded }
        let result = try currentPool().writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA busy_timeout = \(Int(checkpointBusyTimeout * 1000))")
            defer { try? db.execute(sql: "PRAGMA busy_timeout = \(Int(busyTimeout * 1000))") }
            return try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        // The row is (busy, WAL frames, frames checkpointed); busy is 1 when readers held it up.
        return result.map { ($0[0] as Int?) == 0 } == true ? .done : .heldUp
    }

    /// The totals, and the recent windows as of `now`, read in one snapshot; costs the same whatever
    /// the number of visit rows.
    ///
    /// A window of n minutes counts the visits in the current minute and the n - 1 before it.
    public func stats(now: Date = Date()) throws -> VisitorStats {
        try currentPool().read { db in try Self.stats(db, now: now) }
    }

    /// The totals as ``stats(now:)`` reads them and the last `days` days of the daily rollup, today
    /// included, in one snapshot: the index page's figures.
    public func statsAndDays(now: Date = Date(), days: Int) throws -> (stats: VisitorStats, days: [DayStats]) {
        let today = UTCTimestamp.day(now)
        return try currentPool().read { db in
            (try Self.stats(db, now: now), try Self.daily(db, from: today - days + 1, to: today, countries: false))
        }
    }

    private static func stats(_ db: Database, now: Date) throws -> VisitorStats {
        let minute = Int((now.timeIntervalSince1970 / 60).rounded(.down))
        guard let row = try Row.fetchOne(
            db, sql: "SELECT total_visitors, last_updated, visitors_without_rows, bots FROM visitor_stats WHERE id = 1")
        else { throw VisitorStoreError.missingStatsRow }
        var countries: [String: Int] = [:]
        for country in try Row.fetchAll(db, sql: "SELECT country_code, visitors FROM visitor_countries") {
            countries[country[0]] = country[1]
        }
        func window(_ minutes: Int) throws -> Int {
            try Int.fetchOne(
                db, sql: "SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute > ? AND minute <= ?",
                arguments: [minute - minutes, minute]) ?? 0
        }
        let lastUpdated: String? = row[1]
        let uniques = try Int.fetchOne(
            db, sql: "SELECT unique_visitors FROM daily_visits WHERE date = ?",
            arguments: [UTCTimestamp.dayText(UTCTimestamp.day(now))]) ?? 0
        return VisitorStats(
            totalVisitors: row[0],
            countries: countries,
            lastUpdated: lastUpdated.flatMap(UTCTimestamp.parse),
            visitsWithoutRows: row[2],
            bots: row[3],
            recent: VisitorStats.Recent(last5Minutes: try window(5), lastHour: try window(60), lastDay: try window(24 * 60)),
            uniqueVisitorsToday: uniques)
    }

    /// The daily rollup from day `from` to day `to` (days since 1970-01-01, both included), one entry
    /// per day, days without visits included with zeros.
    public func daily(from: Int, to: Int) throws -> [DayStats] {
        try currentPool().read { db in try Self.daily(db, from: from, to: to) }
    }

    /// `countries: false` leaves each day's countries empty, for the index page's chart.
    private static func daily(_ db: Database, from: Int, to: Int, countries: Bool = true) throws -> [DayStats] {
        let (first, last) = (UTCTimestamp.dayText(from), UTCTimestamp.dayText(to))
        var days: [String: DayStats] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT date, visitors, unique_visitors FROM daily_visits WHERE date BETWEEN ? AND ?",
            arguments: [first, last])
        {
            days[row[0]] = DayStats(date: row[0], visitors: row[1], uniqueVisitors: row[2], countries: [:])
        }
        if countries {
            for row in try Row.fetchAll(
                db, sql: "SELECT date, country_code, visitors FROM daily_countries WHERE date BETWEEN ? AND ?",
                arguments: [first, last])
            {
                days[row[0]]?.countries[row[1]] = row[2]
            }
        }
        return (from...max(from, to)).map { day in
            let date = UTCTimestamp.dayText(day)
            return days[date] ?? DayStats(date: date, visitors: 0, uniqueVisitors: 0, countries: [:])
        }
    }

    /// Deletes the visitor-hash keys and hashes of the days before yesterday, as every batch does: the
    /// writer also calls this on a timer, so they go even on days without a visit.
    public func forgetOldKeys(now: Date = Date()) throws {
        try currentPool().writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                var keys = DailyKeys(today: UTCTimestamp.day(now))
                try keys.forgetOld(in: db)
                return .commit
            }
        }
    }

    /// Deletes at most `limit` rows of `visitors` older than `cutoff`, in one short transaction, and
    /// adds them to `visitors_deleted`; answers how many it deleted. Totals, countries and the daily
    /// rollup are not touched.
    public func deleteRows(olderThan cutoff: Date, limit: Int = 1000) throws -> Int {
        let timestamp = UTCTimestamp.format(cutoff, milliseconds: true)
        return try currentPool().writeWithoutTransaction { db in
            var deleted = 0
            try db.inTransaction(.immediate) {
                try db.execute(
                    sql: "DELETE FROM visitors WHERE id IN (SELECT id FROM visitors WHERE timestamp < ? ORDER BY timestamp LIMIT ?)",
                    arguments: [timestamp, limit])
                deleted = db.changesCount
                try db.execute(
                    sql: "UPDATE visitor_stats SET visitors_deleted = visitors_deleted + ? WHERE id = 1", arguments: [deleted])
                return .commit
            }
            return deleted
        }
    }

    /// The number of rows in `visitors`: a full scan, for checks and tests, never for the request path.
    public func visitorRowCount() throws -> Int {
        try currentPool().read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM visitors") ?? 0 }
    }

    /// Runs `body` with a read-only view of the database, for checks and tests.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try currentPool().read(body)
    }
}

extension Statement {
    /// Binds a visit to the `INSERT INTO visitors` statement and runs it.
    ///
    /// Binds through the SQLite C API rather than `execute(arguments:)`: boxing five values per row in
    /// `StatementArguments` cost about a third of the writer's time.
    fileprivate func insert(_ visit: Visit, ip: String?, timestamp: String) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        if let ip {
            bindText(ip, at: 1)
        } else {
            sqlite3_bind_null(statement, 1)
        }
        bindText(visit.userAgent, at: 2)
        bindText(visit.country, at: 3)
        bindText(visit.countryCode, at: 4)
        bindText(timestamp, at: 5)
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(sqlite3_db_handle(statement))),
                sql: sql)
        }
    }

    private func bindText(_ text: String, at index: Int32) {
        var text = text
        text.withUTF8 { bytes in
            _ = sqlite3_bind_text(sqliteStatement, index, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
        }
    }
}

/// SQLite's `SQLITE_TRANSIENT`, a macro Swift cannot import: SQLite copies the bound bytes.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
