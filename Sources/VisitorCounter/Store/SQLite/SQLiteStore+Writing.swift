import Foundation
import GRDB
import GRDBSQLite

#if canImport(Glibc)
import Glibc
#endif

/// Writing batches, and the keys and journal progress that batches need.
extension SQLiteStore {
    /// Writes a batch in one transaction: its rows, its count added to the total, to each of its
    /// countries and to its minutes, and `last_updated` set to `time`; minutes older than a day are
    /// dropped. Every row is a visit: bots' requests come as ``VisitBatch/botsWithoutRows``, sorted out
    /// when they were buffered (``VisitBuffer/kind(of:)``), and are only added to `bots`. Either all of
    /// it is written or none of it.
    ///
    /// With `spillID`, the batch comes from a spill file: the ID is recorded in the same transaction,
    /// and a batch whose ID is already there is not written again (the answer is then `false`), so a
    /// replay that stopped between its commit and removing the file counts nothing twice.
    @discardableResult
    public func write(_ batch: VisitBatch, at time: Date, spillID: String?) throws -> Bool {
        guard !batch.isEmpty else { return true }
        do {
            // SQLite goes on writing through the descriptor it opened even after the file was made
            // read-only: respect the file's permissions as they are now.
            guard access(path, W_OK) == 0 else { throw StoreError.notWritable(path: path) }
            return try write(batch, at: time, spillID: spillID, in: try currentPool())
        } catch {
            closeAfterFailure()
            throw error
        }
    }

    private func write(_ batch: VisitBatch, at time: Date, spillID: String?, in pool: DatabasePool) throws -> Bool {
        var written = true
        try pool.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                var keys = DailyKeys(today: calendar.day(time))
                var found: [Int: [UInt8]] = [:]
                for day in BatchPlan.keyDays(of: batch, at: time, calendar: calendar) {
                    found[day] = try keys.key(for: day, in: db)
                }
                let plan = BatchPlan(batch, at: time, keys: found, storeIP: storeIP, spillID: spillID, calendar: calendar)
                written = try execute(plan, in: db)
                return written ? .commit : .rollback
            }
        }
        return written
    }

    /// Writes `plan` in the open transaction, in the steps ``BatchPlan`` lists; `false` when a guard
    /// found the batch written before.
    private func execute(_ plan: BatchPlan, in db: Database) throws -> Bool {
        if let span = plan.journal {
            let done = try Int64.fetchOne(
                db, sql: "SELECT written FROM journal_progress WHERE journal = ?", arguments: [span.id]) ?? 0
            if done >= Int64(span.end) { return false }
            guard done == Int64(span.start) else {
                throw StoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
            }
            try db.execute(
                sql: """
                    INSERT INTO journal_progress (journal, written, updated_at) VALUES (?, ?, ?)
                    ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                    """,
                arguments: [span.id, Int64(span.end), plan.stats.lastUpdated])
        }
        if let spillID = plan.spillID {
            try db.execute(
                sql: "INSERT INTO replayed_spills (id, replayed_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                arguments: [spillID, plan.stats.lastUpdated])
            if db.changesCount != 1 { return false }
        }
        let insertVisit = try db.cachedStatement(
            sql: "INSERT INTO visitors (ip, user_agent, country, country_code, timestamp, path, referrer) VALUES (?, ?, ?, ?, ?, ?, ?)")
        for row in plan.rows { try insertVisit.insert(row) }
        let addUnique = try db.cachedStatement(
            sql: "INSERT INTO daily_uniques (date, hash) VALUES (?, ?) ON CONFLICT (date, hash) DO NOTHING")
        var uniques: [Int: Int] = [:]
        var dayTexts: [Int: String] = [:]
        for candidate in plan.uniqueCandidates {
            let date = dayTexts[candidate.day] ?? UTCTimestamp.dayText(candidate.day)
            dayTexts[candidate.day] = date
            if try addUnique.insertUnique(date: date, hash: candidate.hash) { uniques[candidate.day, default: 0] += 1 }
        }
        try Self.addRollups(plan, uniques: uniques, in: db)
        try DailyKeys.forget(before: plan.forgetBefore, in: db)
        try db.execute(
            sql: """
                UPDATE visitor_stats SET total_visitors = total_visitors + ?,
                    visitors_without_rows = visitors_without_rows + ?, bots = bots + ?, ignored = ignored + ?,
                    minute_visitors = minute_visitors + ?, last_updated = ?
                WHERE id = 1
                """,
            arguments: [
                plan.stats.total, plan.stats.withoutRows, plan.stats.bots, plan.stats.ignored, plan.stats.minuteVisitors,
                plan.stats.lastUpdated,
            ])
        guard db.changesCount == 1 else { throw StoreError.missingStatsRow }
        try db.cachedStatement(
            sql: """
                UPDATE visitor_stats SET minute_visitors = minute_visitors
                    - (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute <= ?1)
                WHERE id = 1
                """
        ).execute(arguments: [plan.oldestMinuteKept])
        try db.cachedStatement(sql: "DELETE FROM visits_per_minute WHERE minute <= ?").execute(arguments: [plan.oldestMinuteKept])
        return true
    }

    /// Step 5 of ``BatchPlan``: the rollups, with `uniques` the new unique visitors per day.
    private static func addRollups(_ plan: BatchPlan, uniques: [Int: Int], in db: Database) throws {
        let addToCountry = try db.cachedStatement(
            sql: """
                INSERT INTO visitor_countries (country_code, visitors) VALUES (?, ?)
                ON CONFLICT (country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for country in plan.countries { try addToCountry.execute(arguments: [country.key, country.visitors]) }
        let addToMinute = try db.cachedStatement(
            sql: """
                INSERT INTO visits_per_minute (minute, visitors) VALUES (?, ?)
                ON CONFLICT (minute) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for minute in plan.minutes { try addToMinute.execute(arguments: [minute.key, minute.visitors]) }
        let addToDay = try db.cachedStatement(
            sql: """
                INSERT INTO daily_visits (date, visitors, unique_visitors) VALUES (?, ?, ?)
                ON CONFLICT (date) DO UPDATE SET visitors = visitors + excluded.visitors,
                    unique_visitors = unique_visitors + excluded.unique_visitors
                """)
        for day in plan.days {
            try addToDay.execute(arguments: [UTCTimestamp.dayText(day.key), day.visitors, uniques[day.key] ?? 0])
        }
        let addToDayCountry = try db.cachedStatement(
            sql: """
                INSERT INTO daily_countries (date, country_code, visitors) VALUES (?, ?, ?)
                ON CONFLICT (date, country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for dayCountry in plan.dayCountries {
            try addToDayCountry.execute(
                arguments: [UTCTimestamp.dayText(dayCountry.key.day), dayCountry.key.code, dayCountry.visitors])
        }
        try addBounded(plan.pages.map { (nil, $0.key, $0.visitors) }, to: .pages, in: db)
        try addBounded(plan.referrers.map { (nil, $0.key, $0.visitors) }, to: .referrers, in: db)
        try addBounded(plan.dayPages.map { (UTCTimestamp.dayText($0.key.day), $0.key.key, $0.visitors) }, to: .dayPages, in: db)
        try addBounded(
            plan.dayReferrers.map { (UTCTimestamp.dayText($0.key.day), $0.key.key, $0.visitors) }, to: .dayReferrers, in: db)
    }

    /// Adds `additions` (a day or none, a key, visitors) to `table` as ``BatchPlan`` bounds them: a key
    /// already there is added to; a new one goes in while its day (or the table) holds fewer keys than
    /// the bound, else its visitors go to ``BatchPlan/otherKey``. The count of a day's keys is read once
    /// and kept up to date, so a batch costs one indexed lookup per key.
    private static func addBounded(
        _ additions: [(date: String?, key: String, visitors: Int)], to table: BoundedTable, in db: Database
    ) throws {
        guard !additions.isEmpty else { return }
        let dateCondition = table.dated ? "date = ? AND " : ""
        let update = try db.cachedStatement(
            sql: "UPDATE \(table.name) SET visitors = visitors + ? WHERE \(dateCondition)\(table.key) = ?")
        let count = try db.cachedStatement(
            sql: "SELECT count(*) FROM \(table.name)" + (table.dated ? " WHERE date = ?" : ""))
        let insert = try db.cachedStatement(
            sql: table.dated
                ? """
                INSERT INTO \(table.name) (date, \(table.key), visitors) VALUES (?, ?, ?)
                ON CONFLICT (date, \(table.key)) DO UPDATE SET visitors = visitors + excluded.visitors
                """
                : """
                INSERT INTO \(table.name) (\(table.key), visitors) VALUES (?, ?)
                ON CONFLICT (\(table.key)) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        var keysOfDay: [String?: Int] = [:]
        for addition in additions {
            let date = addition.date
            let dateValue: [(any DatabaseValueConvertible)?] = table.dated ? [date] : []
            try update.execute(arguments: StatementArguments([addition.visitors] + dateValue + [addition.key]))
            if db.changesCount == 1 { continue }
            let held: Int
            if let known = keysOfDay[date] {
                held = known
            } else {
                held = try Int.fetchOne(count, arguments: StatementArguments(dateValue)) ?? 0
            }
            let key = held < table.limit ? addition.key : BatchPlan.otherKey
            try insert.execute(arguments: StatementArguments(dateValue + [key, addition.visitors]))
            keysOfDay[date] = held + (key == addition.key ? 1 : 0)
        }
    }

    /// The rollups of pages and referrers, whose keys are bounded.
    private enum BoundedTable {
        case pages, referrers, dayPages, dayReferrers

        var name: String {
            switch self {
            case .pages: "visitor_pages"
            case .referrers: "visitor_referrers"
            case .dayPages: "daily_pages"
            case .dayReferrers: "daily_referrers"
            }
        }
        var key: String { self == .pages || self == .dayPages ? "path" : "host" }
        var dated: Bool { self == .dayPages || self == .dayReferrers }
        var limit: Int { dated ? BatchPlan.maxKeysPerDay : BatchPlan.maxKeysAllTime }
    }

    /// The visitor-hash keys of yesterday, today and tomorrow that exist already, read without waiting
    /// for any writer: what a worker starts with before its writer has made the missing ones.
    public func existingDayKeys(now: Date) throws -> [Int: [UInt8]] {
        let today = calendar.day(now)
        return try currentPool().read { db in
            var found: [Int: [UInt8]] = [:]
            for day in BatchPlan.keyedDays(around: today) {
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
    public func dayKeys(now: Date) throws -> [Int: [UInt8]] {
        try currentPool().writeWithoutTransaction { db in
            var found: [Int: [UInt8]] = [:]
            try db.inTransaction(.immediate) {
                let today = calendar.day(now)
                var keys = DailyKeys(today: today)
                for day in BatchPlan.keyedDays(around: today) { found[day] = try keys.key(for: day, in: db) }
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
}


extension Statement {
    /// Binds a row to the `INSERT INTO visitors` statement and runs it.
    ///
    /// Binds through the SQLite C API rather than `execute(arguments:)`: boxing five values per row in
    /// `StatementArguments` cost about a third of the writer's time.
    fileprivate func insert(_ row: BatchPlan.Row) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        if let ip = row.ip {
            bindText(ip, at: 1)
        } else {
            sqlite3_bind_null(statement, 1)
        }
        bindText(row.userAgent, at: 2)
        bindText(row.country, at: 3)
        bindText(row.countryCode, at: 4)
        bindText(row.timestamp, at: 5)
        bindText(row.path, at: 6)
        if let referrer = row.referrer {
            bindText(referrer, at: 7)
        } else {
            sqlite3_bind_null(statement, 7)
        }
        try step()
    }

    /// Binds a unique-visitor candidate to the `INSERT INTO daily_uniques … DO NOTHING` statement and
    /// runs it; `true` when the row went in. Through the C API as ``insert(_:)`` is: GRDB's
    /// `execute(arguments:)` was a quarter of the writer's instructions.
    fileprivate func insertUnique(date: String, hash: UInt64) throws -> Bool {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        bindText(date, at: 1)
        sqlite3_bind_int64(statement, 2, Int64(bitPattern: hash))
        try step()
        return sqlite3_changes(sqlite3_db_handle(statement)) == 1
    }

    private func step() throws {
        let statement = sqliteStatement
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
