import Foundation

/// The totals as the stats API shows them.
public struct VisitorStats: Sendable, Equatable {
    public var totalVisitors: Int
    /// Visits per ISO country code, `XX` for unknown.
    public var countries: [String: Int]
    /// When the last batch with visits was written; `nil` before the first.
    public var lastUpdated: Date?
    /// Visits in the totals that have no row in `visitors`: counted while a worker's buffer was at its
    /// bound. Not part of the stats JSON; the health and metrics routes show it.
    public var visitsWithoutRows: Int
    /// Requests from bots, which are not visits (see ``BotClassifier``).
    public var bots: Int
    /// Requests of the site's owner (`--ignore-ips`, the opt-out cookie), which are counted nowhere else.
    public var ignored: Int
    /// Distinct visitors (address and user agent) of the current local day.
    public var uniqueVisitorsToday: Int
    public var recent: Recent
    /// The IANA name of the zone whose days these are (``CounterStore/calendar``).
    public var timeZone = "UTC"
    public var periods = Periods()

    /// Visits in periods of local days from the daily rollup, each beside the one before it.
    public struct Periods: Sendable, Equatable {
        public var today = 0
        public var yesterday = 0
        /// Today and the six days before it.
        public var last7Days = 0
        /// The seven days before those.
        public var previous7Days = 0
        public var last30Days = 0
        public var previous30Days = 0

        /// How many days of the rollup the periods need, today included.
        public static let daysNeeded = 60

        public init(
            today: Int = 0, yesterday: Int = 0, last7Days: Int = 0, previous7Days: Int = 0, last30Days: Int = 0,
            previous30Days: Int = 0
        ) {
            self.today = today
            self.yesterday = yesterday
            self.last7Days = last7Days
            self.previous7Days = previous7Days
            self.last30Days = last30Days
            self.previous30Days = previous30Days
        }

        /// Each period's days, as days before today, in the order of ``init(sums:)``.
        static let daysAgo: [ClosedRange<Int>] = [0...0, 1...1, 0...6, 7...13, 0...29, 30...59]

        /// The periods from their sums, in the order of ``daysAgo``.
        init(sums: [Int]) {
            self.init(
                today: sums[0], yesterday: sums[1], last7Days: sums[2], previous7Days: sums[3], last30Days: sums[4],
                previous30Days: sums[5])
        }

        /// The periods ending on day `today`, with `visits` the visits of a day (`YYYY-MM-DD`), none if absent.
        public init(today: Int, visits: [String: Int]) {
            self.init(sums: Self.daysAgo.map { $0.reduce(0) { $0 + (visits[UTCTimestamp.dayText(today - $1)] ?? 0) } })
        }

        public var asJSON: JSON {
            [
                "today": .int(today), "yesterday": .int(yesterday), "last_7_days": .int(last7Days),
                "previous_7_days": .int(previous7Days), "last_30_days": .int(last30Days),
                "previous_30_days": .int(previous30Days),
            ]
        }
    }

    /// Visits per page's path, all time: the ``topCount`` with the most.
    public var pages: [String: Int] = [:]
    /// Visits per referrer's host, all time: the ``topCount`` with the most.
    public var referrers: [String: Int] = [:]
    /// The same over the last ``Dashboard/chartDays`` days, today included: what the index page shows.
    /// Read with the days (``CounterStore/statsAndDays(now:days:)``), empty otherwise; not in the JSON.
    public var recentPages: [String: Int] = [:]
    public var recentReferrers: [String: Int] = [:]

    /// How many pages and referrers the stats name.
    public static let topCount = 50

    /// Visits in the last 5 minutes, hour and 24 hours, the current minute included.
    public struct Recent: Sendable, Equatable {
        public var last5Minutes = 0
        public var lastHour = 0
        public var lastDay = 0

        public init(last5Minutes: Int = 0, lastHour: Int = 0, lastDay: Int = 0) {
            self.last5Minutes = last5Minutes
            self.lastHour = lastHour
            self.lastDay = lastDay
        }
    }

    public init(
        totalVisitors: Int, countries: [String: Int], lastUpdated: Date?, visitsWithoutRows: Int = 0, bots: Int = 0,
        recent: Recent = Recent(), uniqueVisitorsToday: Int = 0, ignored: Int = 0, timeZone: String = "UTC",
        periods: Periods = Periods()
    ) {
        self.timeZone = timeZone
        self.periods = periods
        self.ignored = ignored
        self.uniqueVisitorsToday = uniqueVisitorsToday
        self.totalVisitors = totalVisitors
        self.countries = countries
        self.lastUpdated = lastUpdated
        self.visitsWithoutRows = visitsWithoutRows
        self.bots = bots
        self.recent = recent
    }

    /// Countries with the most visits first, ties in code order.
    public var countriesByCount: [(code: String, visitors: Int)] {
        countries.map { (code: $0.key, visitors: $0.value) }
            .sorted { $0.visitors != $1.visitors ? $0.visitors > $1.visitors : $0.code < $1.code }
    }

    /// `{"total_visitors": N, "countries": {"US": N, ...}, "last_updated": "…Z" | null,
    /// "unique_visitors_today": N, "recent": {"last_5m": N, "last_1h": N, "last_24h": N}, "bots": N,
    /// "ignored": N, "time_zone": "…", "periods": {"today": N, "yesterday": N, "last_7_days": N,
    /// "previous_7_days": N, "last_30_days": N, "previous_30_days": N}, "pages": {"/about.html": N, ...},
    /// "referrers": {"news.example.com": N, ...}}`, countries, pages and referrers by count.
    public var json: String { asJSON.text }

    public var asJSON: JSON {
        [
            "total_visitors": .int(totalVisitors), "countries": .counts(countries), "last_updated": .timestamp(lastUpdated),
            "unique_visitors_today": .int(uniqueVisitorsToday),
            "recent": ["last_5m": .int(recent.last5Minutes), "last_1h": .int(recent.lastHour), "last_24h": .int(recent.lastDay)],
            "bots": .int(bots), "ignored": .int(ignored), "time_zone": .string(timeZone), "periods": periods.asJSON,
            "pages": .counts(pages), "referrers": .counts(referrers),
        ]
    }
}

/// One local day of the daily rollup (the store's zone).
public struct DayStats: Sendable, Equatable {
    /// `YYYY-MM-DD`.
    public var date: String
    public var visitors: Int
    public var uniqueVisitors: Int
    public var countries: [String: Int]

    public init(date: String, visitors: Int, uniqueVisitors: Int, countries: [String: Int]) {
        self.date = date
        self.visitors = visitors
        self.uniqueVisitors = uniqueVisitors
        self.countries = countries
    }

    /// `{"date": "…", "visitors": N, "unique_visitors": N, "countries": {"US": N}}`, countries by count.
    public var json: String { asJSON.text }

    public var asJSON: JSON {
        ["date": .string(date), "visitors": .int(visitors), "unique_visitors": .int(uniqueVisitors), "countries": .counts(countries)]
    }
}

/// One day's pages and referrers, from the daily rollup (``CounterStore/dailyPages(from:to:)``).
public struct DayPages: Sendable, Equatable {
    /// `YYYY-MM-DD`.
    public var date: String
    public var pages: [String: Int]
    public var referrers: [String: Int]

    public init(date: String, pages: [String: Int], referrers: [String: Int]) {
        self.date = date
        self.pages = pages
        self.referrers = referrers
    }

    /// `{"date": "…", "pages": {"/": N, ...}, "referrers": {"news.example.com": N, ...}}`, by count.
    public var asJSON: JSON {
        ["date": .string(date), "pages": .counts(pages), "referrers": .counts(referrers)]
    }
}

extension Dictionary where Key == String, Value == Int {
    /// The `count` keys with the largest values, ties in key order.
    func top(_ count: Int) -> [String: Int] {
        guard self.count > count else { return self }
        return Dictionary(
            uniqueKeysWithValues: sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(count)
                .map { ($0.key, $0.value) })
    }
}
