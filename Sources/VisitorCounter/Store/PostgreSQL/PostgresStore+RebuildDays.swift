import Foundation

extension PostgresStore {
    /// As ``SQLiteStore/rebuildDays(in:)``, in one transaction; every host's counter must be stopped.
    /// The rows are summed by local date in Swift, read a page at a time, so the days are the same
    /// ``LocalCalendar`` days the writer counts.
    public func rebuildDays(in zone: LocalCalendar) throws -> RebuiltDays {
        let old = calendar
        return try onWriter { connection in
            var outcome = RebuiltDays(zone: zone.identifier, firstDate: nil, rows: 0)
            _ = try Self.transaction(connection, "BEGIN ISOLATION LEVEL REPEATABLE READ") {
                let oldest = try connection.execute("SELECT min(timestamp) FROM visitors").rows.first?[0] ?? nil
                if let oldest = oldest.flatMap(UTCTimestamp.parse) {
                    let first = UTCTimestamp.dayText(old.day(oldest))
                    var counts = DayCounts(zone)
                    var after = (timestamp: "", id: "0")
                    while true {
                        let page = try connection.execute(
                            """
                            SELECT timestamp, country_code, id, path, referrer FROM visitors WHERE (timestamp, id) > ($1, $2::bigint)
                            ORDER BY timestamp, id LIMIT 10000
                            """,
                            [after.timestamp, after.id]
                        ).rows
                        for row in page {
                            counts.add(timestamp: row[0] ?? "", countryCode: row[1] ?? "", path: row[3] ?? "/", referrer: row[4] ?? nil)
                        }
                        guard page.count == 10_000, let last = page.last else { break }
                        after = (last[0] ?? "", last[2] ?? "0")
                    }
                    for table in ["daily_visits", "daily_countries", "daily_pages", "daily_referrers"] {
                        try connection.execute("DELETE FROM \(table) WHERE date >= $1", [first])
                    }
                    let days = counts.visits.sorted { $0.key < $1.key }
                    try connection.execute(
                        """
                        INSERT INTO daily_visits (date, visitors, unique_visitors)
                        SELECT d, v, 0 FROM unnest($1::text[], $2::bigint[]) AS t (d, v)
                        ON CONFLICT (date) DO UPDATE SET visitors = daily_visits.visitors + excluded.visitors
                        """,
                        [
                            PostgresArray.text(days.map { UTCTimestamp.dayText($0.key) }),
                            PostgresArray.integers(days.map { Int64($0.value) }),
                        ])
                    let countries = counts.countries.sorted { ($0.key.day, $0.key.code) < ($1.key.day, $1.key.code) }
                    try connection.execute(
                        """
                        INSERT INTO daily_countries (date, country_code, visitors)
                        SELECT d, c, v FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t (d, c, v)
                        ON CONFLICT (date, country_code) DO UPDATE SET visitors = daily_countries.visitors + excluded.visitors
                        """,
                        [
                            PostgresArray.text(countries.map { UTCTimestamp.dayText($0.key.day) }),
                            PostgresArray.text(countries.map(\.key.code)),
                            PostgresArray.integers(countries.map { Int64($0.value) }),
                        ])
                    for (table, column, counted) in [("daily_pages", "path", counts.pages), ("daily_referrers", "host", counts.referrers)] {
                        let keys = counted.sorted { ($0.key.day, $0.key.key) < ($1.key.day, $1.key.key) }
                        try connection.execute(
                            """
                            INSERT INTO \(table) (date, \(column), visitors)
                            SELECT d, k, v FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t (d, k, v)
                            ON CONFLICT (date, \(column)) DO UPDATE SET visitors = \(table).visitors + excluded.visitors
                            """,
                            [
                                PostgresArray.text(keys.map { UTCTimestamp.dayText($0.key.day) }),
                                PostgresArray.text(keys.map(\.key.key)),
                                PostgresArray.integers(keys.map { Int64($0.value) }),
                            ])
                    }
                    outcome.firstDate = first
                    outcome.rows = counts.rows
                }
                try connection.execute("DELETE FROM daily_keys")
                try connection.execute("DELETE FROM daily_uniques")
                try connection.execute(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [RecordedTimeZone.setting, zone.identifier])
                return true
            }
            return outcome
        }
    }
}
