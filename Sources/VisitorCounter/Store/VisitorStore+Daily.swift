import Foundation
import GRDB

/// The keys of the daily visitor hash, as one batch's transaction needs them.
///
/// A day's key is 16 random bytes that SQLite makes (`randomblob`) the first time a batch has a visit
/// of that day, so every worker uses the same one. Keys exist for today and yesterday only (a batch
/// may still carry yesterday's last visits); each batch deletes older keys and their hashes, after
/// which nobody can tell who visited on those days. A visit older than yesterday, from a late spill
/// replay, gets no key: it is counted but not deduplicated, and `--store-ip hashed` stores `NULL`.
struct DailyKeys {
    let today: Int
    private var keys: [Int: [UInt8]?] = [:]
    private var texts: [Int: String] = [:]

    init(today: Int) { self.today = today }

    mutating func text(for day: Int) -> String {
        if let text = texts[day] { return text }
        let text = UTCTimestamp.dayText(day)
        texts[day] = text
        return text
    }

    mutating func key(for day: Int, in db: Database) throws -> [UInt8]? {
        if let known = keys[day] { return known }
        var key: [UInt8]?
        // Today, yesterday, and tomorrow for a clock a little ahead of the writer's.
        if (today - 1)...(today + 1) ~= day {
            let date = text(for: day)
            try db.execute(
                sql: "INSERT INTO daily_keys (date, key) VALUES (?, randomblob(16)) ON CONFLICT (date) DO NOTHING",
                arguments: [date])
            key = try Data.fetchOne(db, sql: "SELECT key FROM daily_keys WHERE date = ?", arguments: [date]).map(Array.init)
        }
        keys[day] = key
        return key
    }

    /// Deletes the keys and hashes of the days before yesterday.
    mutating func forgetOld(in db: Database) throws {
        let yesterday = text(for: today - 1)
        try db.execute(sql: "DELETE FROM daily_keys WHERE date < ?", arguments: [yesterday])
        try db.execute(sql: "DELETE FROM daily_uniques WHERE date < ?", arguments: [yesterday])
    }
}

/// A visitor's hash on a day, to skip the ones a batch has already looked up.
struct DayHash: Hashable {
    var day: Int
    var hash: UInt64
}

/// What one batch adds to the counts besides its rows: per country, per minute, per day and per day
/// and country, with the bots apart.
struct BatchTotals {
    var countries: [String: Int] = [:]
    var minutes: [Int: Int]
    var days: [Int: (visitors: Int, uniques: Int)] = [:]
    var dayCountries: [DayCountry: Int]
    var bots = 0

    /// Starts from the visits counted without rows.
    init(_ withoutRows: [DayCountry: Int], minutes: [Int: Int]) {
        self.minutes = minutes
        self.dayCountries = withoutRows
        for (key, visitors) in withoutRows {
            countries[key.code, default: 0] += visitors
            days[key.day, default: (0, 0)].visitors += visitors
        }
    }

    mutating func add(_ visit: Visit, day: Int) {
        countries[visit.countryCode, default: 0] += 1
        minutes[visit.minute, default: 0] += 1
        days[day, default: (0, 0)].visitors += 1
        dayCountries[DayCountry(day: day, code: visit.countryCode), default: 0] += 1
    }

    func write(into db: Database, oldestMinuteKept: Int) throws {
        let addToCountry = try db.cachedStatement(
            sql: """
                INSERT INTO visitor_countries (country_code, visitors) VALUES (?, ?)
                ON CONFLICT (country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for (code, visitors) in countries { try addToCountry.execute(arguments: [code, visitors]) }

        let addToMinute = try db.cachedStatement(
            sql: """
                INSERT INTO visits_per_minute (minute, visitors) VALUES (?, ?)
                ON CONFLICT (minute) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for (minute, visitors) in minutes where minute > oldestMinuteKept {
            try addToMinute.execute(arguments: [minute, visitors])
        }
        try db.execute(sql: "DELETE FROM visits_per_minute WHERE minute <= ?", arguments: [oldestMinuteKept])

        let addToDay = try db.cachedStatement(
            sql: """
                INSERT INTO daily_visits (date, visitors, unique_visitors) VALUES (?, ?, ?)
                ON CONFLICT (date) DO UPDATE SET visitors = visitors + excluded.visitors,
                    unique_visitors = unique_visitors + excluded.unique_visitors
                """)
        for (day, counts) in days {
            try addToDay.execute(arguments: [UTCTimestamp.dayText(day), counts.visitors, counts.uniques])
        }
        let addToDayCountry = try db.cachedStatement(
            sql: """
                INSERT INTO daily_countries (date, country_code, visitors) VALUES (?, ?, ?)
                ON CONFLICT (date, country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                """)
        for (key, visitors) in dayCountries {
            try addToDayCountry.execute(arguments: [UTCTimestamp.dayText(key.day), key.code, visitors])
        }
    }
}
