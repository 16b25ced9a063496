import Foundation
import GRDB
import GRDBSQLite

/// Reading the totals, the recent windows and the daily rollup.
extension SQLiteStore {
    /// The totals, and the recent windows as of `now`, read in one snapshot; costs the same whatever
    /// the number of visit rows.
    ///
    /// A window of n minutes counts the visits in the current minute and the n - 1 before it.
    public func stats(now: Date) throws -> VisitorStats {
        try currentPool().read { db in try Self.stats(db, now: now, calendar: calendar) }
    }

    /// The totals as ``stats(now:)`` reads them and the last `days` days of the daily rollup, today
    /// included, in one snapshot: the index page's figures.
    public func statsAndDays(now: Date, days: Int) throws -> (stats: VisitorStats, days: [DayStats]) {
        let today = calendar.day(now)
        return try currentPool().read { db in
            var stats = try Self.stats(db, now: now, calendar: calendar)
            let (first, last) = (UTCTimestamp.dayText(today - days + 1), UTCTimestamp.dayText(today))
            stats.recentPages = try Self.counts(
                db, sql: "SELECT path, sum(visitors) FROM daily_pages WHERE date BETWEEN ? AND ? GROUP BY path",
                arguments: [first, last]
            ).top(VisitorStats.topCount)
            stats.recentReferrers = try Self.counts(
                db, sql: "SELECT host, sum(visitors) FROM daily_referrers WHERE date BETWEEN ? AND ? GROUP BY host",
                arguments: [first, last]
            ).top(VisitorStats.topCount)
            return (stats, try Self.daily(db, from: today - days + 1, to: today, countries: false))
        }
    }

    private static func stats(_ db: Database, now: Date, calendar: LocalCalendar) throws -> VisitorStats {
        let today = calendar.day(now)
        // One statement for the stats row, every window and every period; cached, as parsing the read's
        // statements again each time was most of its time. The last day is the sum of all minutes, kept
        // in the stats row, less those before the window (not deleted yet while no batch came) and
        // those after it (a writer's clock ahead of this one).
        var arguments: StatementArguments = [UTCTimestamp.minute(now), UTCTimestamp.dayText(today)]
        for period in VisitorStats.Periods.daysAgo {
            arguments += [UTCTimestamp.dayText(today - period.upperBound), UTCTimestamp.dayText(today - period.lowerBound)]
        }
        let statement = try db.cachedStatement(
            sql: """
                SELECT total_visitors, last_updated, visitors_without_rows, bots, ignored,
                    (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute > ?1 - 5 AND minute <= ?1),
                    (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute > ?1 - 60 AND minute <= ?1),
                    minute_visitors
                        - (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute <= ?1 - 1440)
                        - (SELECT coalesce(sum(visitors), 0) FROM visits_per_minute WHERE minute > ?1),
                    coalesce((SELECT unique_visitors FROM daily_visits WHERE date = ?2), 0),
                    \(Self.periodSums)
                FROM visitor_stats WHERE id = 1
                """)
        var found: VisitorStats?
        try statement.forEachRow(arguments) { row in
            found = VisitorStats(
                totalVisitors: row.integer(0), countries: [:], lastUpdated: row.text(1).flatMap(UTCTimestamp.parse),
                visitsWithoutRows: row.integer(2), bots: row.integer(3),
                recent: VisitorStats.Recent(last5Minutes: row.integer(5), lastHour: row.integer(6), lastDay: row.integer(7)),
                uniqueVisitorsToday: row.integer(8), ignored: row.integer(4), timeZone: calendar.identifier,
                periods: VisitorStats.Periods(sums: VisitorStats.Periods.daysAgo.indices.map { row.integer(Int32(9 + $0)) }))
        }
        guard var stats = found else { throw StoreError.missingStatsRow }
        // Room for every country there is: growing the table as it fills was a tenth of the read.
        stats.countries.reserveCapacity(256)
        try db.cachedStatement(sql: "SELECT country_code, visitors FROM visitor_countries").forEachRow([]) { row in
            stats.countries[row.text(0) ?? ""] = row.integer(1)
        }
        let top = "ORDER BY visitors DESC, 1 LIMIT \(VisitorStats.topCount)"
        stats.pages = try counts(db, sql: "SELECT path, visitors FROM visitor_pages \(top)")
        stats.referrers = try counts(db, sql: "SELECT host, visitors FROM visitor_referrers \(top)")
        return stats
    }

    /// The rows of `sql`, a key and a count each, as a dictionary.
    private static func counts(_ db: Database, sql: String, arguments: StatementArguments = []) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try db.cachedStatement(sql: sql).forEachRow(arguments) { row in counts[row.text(0) ?? ""] = row.integer(1) }
        return counts
    }

    public func dailyPages(from: Int, to: Int) throws -> [DayPages] {
        let (first, last) = (UTCTimestamp.dayText(from), UTCTimestamp.dayText(to))
        return try currentPool().read { db in
            var days: [String: DayPages] = [:]
            for (table, key) in [("daily_pages", "path"), ("daily_referrers", "host")] {
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT date, \(key), visitors FROM \(table) WHERE date BETWEEN ? AND ?", arguments: [first, last])
                while let row = try rows.next() {
                    let date: String = row[0]
                    var day = days[date] ?? DayPages(date: date, pages: [:], referrers: [:])
                    if key == "path" { day.pages[row[1]] = row[2] } else { day.referrers[row[1]] = row[2] }
                    days[date] = day
                }
            }
            return (from...max(from, to)).map { day in
                let date = UTCTimestamp.dayText(day)
                return days[date] ?? DayPages(date: date, pages: [:], referrers: [:])
            }
        }
    }

    /// The sums of the periods' visits, one column each, their first and last dates the arguments
    /// from `?3` on.
    private static let periodSums = VisitorStats.Periods.daysAgo.indices.map { index in
        "(SELECT coalesce(sum(visitors), 0) FROM daily_visits WHERE date BETWEEN ?\(3 + 2 * index) AND ?\(4 + 2 * index))"
    }.joined(separator: ",\n")

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

    /// The number of rows in `visitors`: a full scan, for checks and tests, never for the request path.
    public func visitorRowCount() throws -> Int {
        try currentPool().read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM visitors") ?? 0 }
    }

    public func visitPage(after: VisitCursor, before: String, limit: Int) throws -> [ExportedVisit] {
        try currentPool().read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, timestamp, ip, country_code, country, user_agent, path, referrer FROM visitors
                    WHERE (timestamp, id) > (?, ?) AND timestamp < ? ORDER BY timestamp, id LIMIT ?
                    """,
                arguments: [after.timestamp, after.id, before, limit]
            ).map { row in
                ExportedVisit(
                    id: row[0], timestamp: row[1], ip: row[2], countryCode: row[3], country: row[4], userAgent: row[5],
                    path: row[6], referrer: row[7])
            }
        }
    }

    /// Streams through a cursor in one read transaction, so memory stays the same however many days.
    public func forEachDailyRow(first: String, last: String, _ body: (DailyRow) throws -> Void) throws {
        try currentPool().read { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT d.date, d.visitors, d.unique_visitors, c.country_code, c.visitors
                    FROM daily_visits d LEFT JOIN daily_countries c ON c.date = d.date
                    WHERE d.date BETWEEN ? AND ? ORDER BY d.date, c.visitors DESC, c.country_code
                    """,
                arguments: [first, last])
            while let row = try rows.next() {
                try body(DailyRow(date: row[0], visitors: row[1], uniqueVisitors: row[2], countryCode: row[3], countryVisitors: row[4]))
            }
        }
    }

    /// Runs `body` with a read-only view of the database, for checks and tests.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try currentPool().read(body)
    }
}

/// A row of a statement being stepped through with SQLite's C API, its columns read in place.
struct SQLiteRow {
    let statement: OpaquePointer

    func integer(_ column: Int32) -> Int { Int(sqlite3_column_int64(statement, column)) }

    /// The column's text; `nil` for `NULL`.
    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(statement, column) else { return nil }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(statement, column))), as: UTF8.self)
    }
}

extension Statement {
    /// Runs the statement with `arguments`, handing each row to `body` as the C API steps to it: GRDB's
    /// `Row` boxed every value of every row, a third of the stats read once its statements were cached.
    fileprivate func forEachRow(_ arguments: StatementArguments, _ body: (SQLiteRow) throws -> Void) throws {
        try setArguments(arguments)
        let statement = sqliteStatement
        defer { sqlite3_reset(statement) }
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(statement))),
                    sql: sql)
            }
            try body(SQLiteRow(statement: statement))
        }
    }
}
