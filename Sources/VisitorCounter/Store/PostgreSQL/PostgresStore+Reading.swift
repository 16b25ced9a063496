import Foundation

/// Reading the totals, the recent windows, the daily rollup and the export's pages.
extension PostgresStore {
    /// One `REPEATABLE READ` snapshot for several statements, as SQLite's read transaction.
    private static let snapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    public func stats(now: Date) throws -> VisitorStats {
        try onReader { connection in
            var stats: VisitorStats?
            _ = try Self.transaction(connection, Self.snapshot) {
                stats = try Self.stats(connection, now: now, calendar: calendar)
                return true
            }
            guard let stats else { throw StoreError.missingStatsRow }
            return stats
        }
    }

    public func statsAndDays(now: Date, days: Int) throws -> (stats: VisitorStats, days: [DayStats]) {
        let today = calendar.day(now)
        return try onReader { connection in
            var figures: (stats: VisitorStats, days: [DayStats])?
            _ = try Self.transaction(connection, Self.snapshot) {
                var stats = try Self.stats(connection, now: now, calendar: calendar)
                let (first, last) = (UTCTimestamp.dayText(today - days + 1), UTCTimestamp.dayText(today))
                stats.recentPages = try Self.counts(
                    connection,
                    "SELECT path, sum(visitors) FROM daily_pages WHERE date BETWEEN $1 AND $2 GROUP BY path "
                        + "ORDER BY 2 DESC, 1 LIMIT \(VisitorStats.topCount)", [first, last])
                stats.recentReferrers = try Self.counts(
                    connection,
                    "SELECT host, sum(visitors) FROM daily_referrers WHERE date BETWEEN $1 AND $2 GROUP BY host "
                        + "ORDER BY 2 DESC, 1 LIMIT \(VisitorStats.topCount)", [first, last])
                figures = (stats, try Self.daily(connection, from: today - days + 1, to: today, countries: false))
                return true
            }
            guard let figures else { throw StoreError.missingStatsRow }
            return figures
        }
    }

    /// The daily route's read, on a request thread: on a connection of its own, and ``DailyHistory/Busy``
    /// at once while another request thread reads on it, rather than a wait behind a read that may be
    /// waiting for a server that is gone. One read at a time per worker: a range takes milliseconds to
    /// read, and the route keeps what it read.
    public func daily(from: Int, to: Int) throws -> [DayStats] {
        let days = try onRequestThread { connection in
            var days: [DayStats] = []
            _ = try Self.transaction(connection, Self.snapshot) {
                days = try Self.daily(connection, from: from, to: to, countries: true)
                return true
            }
            return days
        }
        guard let days else { throw DailyHistory.Busy(retryAfter: 1, reason: "another daily history read is under way") }
        return days
    }

    private static func stats(_ connection: PostgresConnection, now: Date, calendar: LocalCalendar) throws -> VisitorStats {
        let minute = UTCTimestamp.minute(now)
        let today = calendar.day(now)
        guard let row = try connection.execute(
            "SELECT total_visitors, last_updated, visitors_without_rows, bots, ignored FROM visitor_stats WHERE id = 1"
        ).rows.first else { throw StoreError.missingStatsRow }
        var countries: [String: Int] = [:]
        for country in try connection.execute("SELECT country_code, visitors FROM visitor_countries").rows {
            if let code = country[0], let visitors = country[1].flatMap({ Int($0) }) { countries[code] = visitors }
        }
        // The last day as in SQLite: the sum of all minutes, kept in the stats row, less those outside
        // the window.
        let windows = try connection.execute(
            """
            SELECT coalesce(sum(visitors) FILTER (WHERE minute > $1::bigint - 5 AND minute <= $1::bigint), 0),
                coalesce(sum(visitors) FILTER (WHERE minute > $1::bigint - 60 AND minute <= $1::bigint), 0),
                (SELECT minute_visitors FROM visitor_stats WHERE id = 1)
                    - coalesce(sum(visitors) FILTER (WHERE minute <= $1::bigint - 1440 OR minute > $1::bigint), 0)
            FROM visits_per_minute WHERE minute > $1::bigint - 60 OR minute <= $1::bigint - 1440
            """,
            [String(minute)]
        ).rows.first ?? []
        func integer(_ value: String??) -> Int { value.flatMap { $0 }.flatMap { Int($0) } ?? 0 }
        let uniques = try connection.execute(
            "SELECT unique_visitors FROM daily_visits WHERE date = $1", [UTCTimestamp.dayText(today)]
        ).firstInteger ?? 0
        var visits: [String: Int] = [:]
        for day in try connection.execute(
            "SELECT date, visitors FROM daily_visits WHERE date BETWEEN $1 AND $2",
            [UTCTimestamp.dayText(today - VisitorStats.Periods.daysNeeded + 1), UTCTimestamp.dayText(today)]
        ).rows {
            if let date = day[0], let count = day[1].flatMap({ Int($0) }) { visits[date] = count }
        }
        var stats = VisitorStats(
            totalVisitors: integer(row[0]),
            countries: countries,
            lastUpdated: row[1].flatMap(UTCTimestamp.parse),
            visitsWithoutRows: integer(row[2]),
            bots: integer(row[3]),
            recent: VisitorStats.Recent(
                last5Minutes: integer(windows.first), lastHour: integer(windows.dropFirst().first),
                lastDay: integer(windows.dropFirst(2).first)),
            uniqueVisitorsToday: uniques, ignored: integer(row[4]), timeZone: calendar.identifier,
            periods: VisitorStats.Periods(today: today, visits: visits))
        let top = "ORDER BY visitors DESC, 1 LIMIT \(VisitorStats.topCount)"
        stats.pages = try counts(connection, "SELECT path, visitors FROM visitor_pages \(top)")
        stats.referrers = try counts(connection, "SELECT host, visitors FROM visitor_referrers \(top)")
        return stats
    }

    /// The rows of `sql`, a key and a count each, as a dictionary.
    private static func counts(_ connection: PostgresConnection, _ sql: String, _ parameters: [String?] = []) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try connection.execute(sql, parameters).rows {
            if let key = row[0], let visitors = row[1].flatMap({ Int($0) }) { counts[key] = visitors }
        }
        return counts
    }

    /// Read on the reader's connection, as the export is: the route answers at most a month.
    public func dailyPages(from: Int, to: Int) throws -> [DayPages] {
        let (first, last) = (UTCTimestamp.dayText(from), UTCTimestamp.dayText(to))
        let (pages, referrers) = try onReader { connection in
            var read: (pages: PostgresRows?, referrers: PostgresRows?) = (nil, nil)
            _ = try Self.transaction(connection, Self.snapshot) {
                read.pages = try connection.execute(
                    "SELECT date, path, visitors FROM daily_pages WHERE date BETWEEN $1 AND $2", [first, last])
                read.referrers = try connection.execute(
                    "SELECT date, host, visitors FROM daily_referrers WHERE date BETWEEN $1 AND $2", [first, last])
                return true
            }
            return read
        }
        var days: [String: DayPages] = [:]
        for (rows, isPages) in [(pages, true), (referrers, false)] {
            for row in rows?.rows ?? [] {
                guard let date = row[0], let key = row[1], let visitors = row[2].flatMap({ Int($0) }) else { continue }
                var day = days[date] ?? DayPages(date: date, pages: [:], referrers: [:])
                if isPages { day.pages[key] = visitors } else { day.referrers[key] = visitors }
                days[date] = day
            }
        }
        return (from...max(from, to)).map { day in
            let date = UTCTimestamp.dayText(day)
            return days[date] ?? DayPages(date: date, pages: [:], referrers: [:])
        }
    }

    private static func daily(_ connection: PostgresConnection, from: Int, to: Int, countries: Bool) throws -> [DayStats] {
        let (first, last) = (UTCTimestamp.dayText(from), UTCTimestamp.dayText(to))
        var days: [String: DayStats] = [:]
        for row in try connection.execute(
            "SELECT date, visitors, unique_visitors FROM daily_visits WHERE date BETWEEN $1 AND $2", [first, last]
        ).rows {
            guard let date = row[0] else { continue }
            days[date] = DayStats(
                date: date, visitors: row[1].flatMap { Int($0) } ?? 0, uniqueVisitors: row[2].flatMap { Int($0) } ?? 0,
                countries: [:])
        }
        if countries {
            for row in try connection.execute(
                "SELECT date, country_code, visitors FROM daily_countries WHERE date BETWEEN $1 AND $2", [first, last]
            ).rows {
                guard let date = row[0], let code = row[1] else { continue }
                days[date]?.countries[code] = row[2].flatMap { Int($0) } ?? 0
            }
        }
        return (from...max(from, to)).map { day in
            let date = UTCTimestamp.dayText(day)
            return days[date] ?? DayStats(date: date, visitors: 0, uniqueVisitors: 0, countries: [:])
        }
    }

    public func visitPage(after: VisitCursor, before: String, limit: Int) throws -> [ExportedVisit] {
        try onReader { connection in
            try connection.execute(
                """
                SELECT id, timestamp, ip, country_code, country, user_agent, path, referrer FROM visitors
                WHERE (timestamp, id) > ($1, $2::bigint) AND timestamp < $3 ORDER BY timestamp, id LIMIT $4
                """,
                [after.timestamp, String(after.id), before, String(limit)]
            ).rows.map { row in
                ExportedVisit(
                    id: row[0].flatMap { Int64($0) } ?? 0, timestamp: row[1] ?? "", ip: row[2], countryCode: row[3] ?? "",
                    country: row[4] ?? "", userAgent: row[5] ?? "", path: row[6] ?? Visit.indexPath, referrer: row[7])
            }
        }
    }

    /// Reads every row at once: the rollup has a row per day and country, a few hundred thousand in
    /// ten years at most, where the raw visits are paged.
    public func forEachDailyRow(first: String, last: String, _ body: (DailyRow) throws -> Void) throws {
        let rows = try onReader { connection in
            try connection.execute(
                """
                SELECT d.date, d.visitors, d.unique_visitors, c.country_code, c.visitors
                FROM daily_visits d LEFT JOIN daily_countries c ON c.date = d.date
                WHERE d.date BETWEEN $1 AND $2 ORDER BY d.date, c.visitors DESC, c.country_code
                """,
                [first, last]
            ).rows
        }
        for row in rows {
            try body(
                DailyRow(
                    date: row[0] ?? "", visitors: row[1].flatMap { Int($0) } ?? 0,
                    uniqueVisitors: row[2].flatMap { Int($0) } ?? 0, countryCode: row[3],
                    countryVisitors: row[4].flatMap { Int($0) }))
        }
    }

    public func visitorRowCount() throws -> Int {
        try onReader { connection in try connection.execute("SELECT count(*) FROM visitors").firstInteger ?? 0 }
    }
}
