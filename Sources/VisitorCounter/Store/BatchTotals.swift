import GRDB

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
