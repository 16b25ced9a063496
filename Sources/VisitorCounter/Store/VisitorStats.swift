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
    /// Distinct visitors (address and user agent) of the current UTC day.
    public var uniqueVisitorsToday: Int
    public var recent: Recent
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
        recent: Recent = Recent(), uniqueVisitorsToday: Int = 0, ignored: Int = 0
    ) {
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
    /// "ignored": N, "pages": {"/about.html": N, ...}, "referrers": {"news.example.com": N, ...}}`,
    /// countries by count.
    public var json: String { asJSON.text }

    public var asJSON: JSON {
        [
            "total_visitors": .int(totalVisitors), "countries": .counts(countries), "last_updated": .timestamp(lastUpdated),
            "unique_visitors_today": .int(uniqueVisitorsToday),
            "recent": ["last_5m": .int(recent.last5Minutes), "last_1h": .int(recent.lastHour), "last_24h": .int(recent.lastDay)],
            "bots": .int(bots), "ignored": .int(ignored), "pages": .counts(pages), "referrers": .counts(referrers),
        ]
    }
}

/// One UTC day of the daily rollup.
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
