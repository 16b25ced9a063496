import Foundation
import GRDB

extension SQLiteStore {
    /// Counts the daily rollup again in `zone` from the rows of `visitors`, and records `zone`, in one
    /// transaction; what is kept and what is lost: ``RebuiltDays``. The counter must be stopped: a
    /// worker still running would go on writing days of the old zone.
    public func rebuildDays(in zone: LocalCalendar) throws -> RebuiltDays {
        let old = calendar
        return try currentPool().writeWithoutTransaction { db in
            var outcome = RebuiltDays(zone: zone.identifier, firstDate: nil, rows: 0)
            try db.inTransaction(.immediate) {
                if let oldest = try String.fetchOne(db, sql: "SELECT min(timestamp) FROM visitors").flatMap(UTCTimestamp.parse) {
                    let first = UTCTimestamp.dayText(old.day(oldest))
                    var counts = DayCounts(zone)
                    let rows = try Row.fetchCursor(db, sql: "SELECT timestamp, country_code, path, referrer FROM visitors")
                    while let row = try rows.next() {
                        counts.add(timestamp: row[0], countryCode: row[1], path: row[2], referrer: row[3])
                    }
                    for table in ["daily_visits", "daily_countries", "daily_pages", "daily_referrers"] {
                        try db.execute(sql: "DELETE FROM \(table) WHERE date >= ?", arguments: [first])
                    }
                    // A new day before `first` (a zone west of the old one) adds to the old day of that date.
                    for (day, visitors) in counts.visits {
                        try db.execute(
                            sql: """
                                INSERT INTO daily_visits (date, visitors, unique_visitors) VALUES (?, ?, 0)
                                ON CONFLICT (date) DO UPDATE SET visitors = visitors + excluded.visitors
                                """,
                            arguments: [UTCTimestamp.dayText(day), visitors])
                    }
                    for (key, visitors) in counts.countries {
                        try db.execute(
                            sql: """
                                INSERT INTO daily_countries (date, country_code, visitors) VALUES (?, ?, ?)
                                ON CONFLICT (date, country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                                """,
                            arguments: [UTCTimestamp.dayText(key.day), key.code, visitors])
                    }
                    for (table, column, counted) in [("daily_pages", "path", counts.pages), ("daily_referrers", "host", counts.referrers)] {
                        for (key, visitors) in counted {
                            try db.execute(
                                sql: """
                                    INSERT INTO \(table) (date, \(column), visitors) VALUES (?, ?, ?)
                                    ON CONFLICT (date, \(column)) DO UPDATE SET visitors = visitors + excluded.visitors
                                    """,
                                arguments: [UTCTimestamp.dayText(key.day), key.key, visitors])
                        }
                    }
                    outcome.firstDate = first
                    outcome.rows = counts.rows
                }
                // The keys and hashes are of the old days.
                try db.execute(sql: "DELETE FROM daily_keys")
                try db.execute(sql: "DELETE FROM daily_uniques")
                try db.execute(
                    sql: """
                        INSERT INTO settings (name, value) VALUES (?, ?)
                        ON CONFLICT (name) DO UPDATE SET value = excluded.value
                        """,
                    arguments: [RecordedTimeZone.setting, zone.identifier])
                return .commit
            }
            return outcome
        }
    }
}
