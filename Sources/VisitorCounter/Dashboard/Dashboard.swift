import Foundation

/// Everything the index page shows, worked out once per stats-cache period from one read of the totals
/// and the last 30 days: the figures as text, the countries with their flags and shares, the chart's
/// geometry. ``context`` hands the same to a Mustache template, default or the site owner's.
public struct Dashboard: Sendable {
    public static let chartDays = 30
    /// How many pages and referrers of the last ``chartDays`` days the page lists.
    public static let listedPages = 10

    public let stats: VisitorStats
    public let chart: DailyChart
    public let countries: [Country]
    /// Seconds between the page script's reads of `/api/sys/stats`.
    public let refreshSeconds: Int
    public let now: Date
    /// Today, the last 7 and the last 30 local days, each beside the period before it.
    public let periods: [Period]
    /// The country database the figures' countries come from, for the footer's credit and month;
    /// set by the stats cache from what nginx passes (``StatsCache/use(_:)``).
    public var geoipDatabase: GeoIPDatabase?

    public struct Country: Sendable, Equatable {
        public var code: String
        public var name: String
        public var flag: String
        public var visitors: Int
        /// The share of all visits in tenths of a percent, rounded: 125 is 12.5%.
        public var shareTenths: Int
    }

    /// A period of the page: its visits and their change on the period before.
    public struct Period: Sendable, Equatable {
        /// The key in `/api/sys/stats`'s `periods`: `today`, `last_7_days`, `last_30_days`.
        public var key: String
        /// "Today", "Last 7 days".
        public var label: String
        /// The period before, as the change names it: "yesterday", "the previous 7 days".
        public var before: String
        public var change: PeriodChange
    }

    /// The page's periods out of `periods`.
    static func periods(_ periods: VisitorStats.Periods) -> [Period] {
        [
            Period(
                key: "today", label: "Today", before: "yesterday",
                change: PeriodChange(visitors: periods.today, previous: periods.yesterday)),
            Period(
                key: "last_7_days", label: "Last 7 days", before: "the previous 7 days",
                change: PeriodChange(visitors: periods.last7Days, previous: periods.previous7Days)),
            Period(
                key: "last_30_days", label: "Last 30 days", before: "the previous 30 days",
                change: PeriodChange(visitors: periods.last30Days, previous: periods.previous30Days)),
        ]
    }

    /// How often the page's script reads `/api/sys/stats`: every stats-cache period, but no more often
    /// than every 10 s, since a page left open in many tabs should cost the server next to nothing.
    public static func refreshSeconds(statsCache: Int) -> Int { max(statsCache, 10) }

    /// `days` are the daily rollup's last ``chartDays`` days, oldest first (fewer or none is fine).
    public init(stats: VisitorStats, days: [DayStats], refreshSeconds: Int, now: Date = Date()) {
        self.stats = stats
        self.chart = DailyChart(days: days)
        self.refreshSeconds = refreshSeconds
        self.now = now
        self.periods = Self.periods(stats.periods)
        self.countries = stats.countriesByCount.map { entry in
            Country(
                code: entry.code, name: Self.name(forCode: entry.code), flag: Self.flag(forCode: entry.code),
                visitors: entry.visitors, shareTenths: Self.shareTenths(entry.visitors, of: stats.totalVisitors))
        }
    }

    /// The figures as Mustache sees them. The keys are listed in docs/http.md; numbers come both as
    /// numbers and, with `_text`, grouped by thousands.
    public var context: [String: Any] {
        var context: [String: Any] = [
            "total_visitors": stats.totalVisitors,
            "total_visitors_text": Self.grouped(stats.totalVisitors),
            "unique_visitors_today": stats.uniqueVisitorsToday,
            "unique_visitors_today_text": Self.grouped(stats.uniqueVisitorsToday),
            "recent": [
                "last_5m": stats.recent.last5Minutes, "last_5m_text": Self.grouped(stats.recent.last5Minutes),
                "last_1h": stats.recent.lastHour, "last_1h_text": Self.grouped(stats.recent.lastHour),
                "last_24h": stats.recent.lastDay, "last_24h_text": Self.grouped(stats.recent.lastDay),
            ],
            "bots": stats.bots,
            "bots_text": Self.grouped(stats.bots),
            "last_updated_relative": stats.lastUpdated.map { Self.relative($0, now: now) } ?? "never",
            "has_countries": !countries.isEmpty,
            "has_pages": !stats.recentPages.isEmpty,
            "pages": Self.listed(stats.recentPages).map { entry -> [String: Any] in
                ["path": entry.key, "visitors": entry.visitors, "visitors_text": Self.grouped(entry.visitors)]
            },
            "has_referrers": !stats.recentReferrers.isEmpty,
            "referrers": Self.listed(stats.recentReferrers).map { entry -> [String: Any] in
                ["host": entry.key, "visitors": entry.visitors, "visitors_text": Self.grouped(entry.visitors)]
            },
            "countries": countries.map { country -> [String: Any] in
                [
                    "code": country.code, "name": country.name, "flag": country.flag, "visitors": country.visitors,
                    "visitors_text": Self.grouped(country.visitors), "share": Self.tenthsText(country.shareTenths),
                    "share_text": Self.percentText(country.shareTenths, visitors: country.visitors),
                ]
            },
            "days": chart.bars.map { bar -> [String: Any] in
                [
                    "date": bar.date, "label": bar.label, "visitors": bar.visitors,
                    "visitors_text": Self.grouped(bar.visitors), "unique_visitors": bar.uniqueVisitors,
                    "unique_visitors_text": Self.grouped(bar.uniqueVisitors), "is_today": bar.isToday,
                    "x": DailyChart.number(bar.x), "y": DailyChart.number(bar.y),
                    "width": DailyChart.number(DailyChart.barWidth), "height": DailyChart.number(bar.height),
                ]
            },
            "chart": [
                "width": DailyChart.number(DailyChart.width), "height": DailyChart.number(DailyChart.height),
                "baseline": DailyChart.number(DailyChart.baseline), "title": chart.title,
                "summary": chart.summary, "max_visitors_text": Self.grouped(chart.maxVisitors),
                "ticks": chart.ticks,
            ],
            "time_zone": stats.timeZone,
            "periods": periods.map { period -> [String: Any] in
                var entry: [String: Any] = [
                    "key": period.key, "label": period.label, "visitors": period.change.visitors,
                    "visitors_text": Self.grouped(period.change.visitors), "previous": period.change.previous,
                    "previous_text": Self.grouped(period.change.previous), "before": period.before,
                    "trend": period.change.trend.rawValue, "change_text": period.change.text(before: period.before),
                    "is_up": period.change.trend == .up, "is_down": period.change.trend == .down,
                    "is_same": period.change.trend == .same, "is_new": period.change.trend == .new,
                ]
                if let percent = period.change.percent { entry["percent"] = percent }
                return entry
            },
            "refresh_seconds": refreshSeconds,
            "generated_at": UTCTimestamp.format(now),
        ]
        if let geoipDatabase { context["country_data"] = geoipDatabase.context }
        // Absent rather than empty before the first write: an empty string would still open a section.
        if let updated = stats.lastUpdated {
            context["last_updated"] = UTCTimestamp.format(updated)
            context["last_updated_utc"] = Self.exactUTC(updated)
        }
        return context
    }

    /// The ``listedPages`` entries with the most visits, the most first, ties in key order.
    static func listed(_ counts: [String: Int]) -> [(key: String, visitors: Int)] {
        Array(
            counts.map { (key: $0.key, visitors: $0.value) }
                .sorted { $0.visitors != $1.visitors ? $0.visitors > $1.visitors : $0.key < $1.key }
                .prefix(listedPages))
    }

    // MARK: - How figures are written

    /// `XX` is "Unknown"; a code without a known name is shown as itself.
    public static func name(forCode code: String) -> String {
        code == Visit.unknownCountryCode ? Visit.unknownCountryName : (CountryNames.name(forCode: code) ?? code)
    }

    /// The flag emoji: the code's two letters as regional indicator symbols. `XX` and anything that is
    /// not two letters get a globe.
    public static func flag(forCode code: String) -> String {
        let letters = Array(code.unicodeScalars)
        guard code != Visit.unknownCountryCode, letters.count == 2, letters.allSatisfy({ ("A"..."Z").contains($0) })
        else { return "\u{1F310}" }
        var flag = String.UnicodeScalarView()
        for letter in letters {
            flag.append(Unicode.Scalar(0x1F1E6 + letter.value - Unicode.Scalar("A").value)!)
        }
        return String(flag)
    }

    /// `1234567` as `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = value < 0 ? "-" : ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result += "," }
            result.append(digit)
        }
        return result
    }

    /// Tenths of a percent, rounded half up, the way the page script rounds too.
    static func shareTenths(_ part: Int, of whole: Int) -> Int {
        guard whole > 0 else { return 0 }
        return Int((Double(part) * 1000 / Double(whole)).rounded(.toNearestOrAwayFromZero))
    }

    static func tenthsText(_ tenths: Int) -> String { "\(tenths / 10).\(tenths % 10)" }

    /// `12.5%`; a share that rounds to nothing but has visits is `<0.1%`.
    static func percentText(_ tenths: Int, visitors: Int) -> String {
        tenths == 0 && visitors > 0 ? "<0.1%" : tenthsText(tenths) + "%"
    }

    /// `2024-03-20 12:00:00 UTC`.
    public static func exactUTC(_ date: Date) -> String {
        let iso = UTCTimestamp.format(date)
        return "\(iso.prefix(10)) \(iso.dropFirst(11).prefix(8)) UTC"
    }

    /// "just now", "42 seconds ago", "1 minute ago", "3 hours ago", "2 days ago". A time in the future
    /// (another clock ahead of this one) is "just now".
    public static func relative(_ date: Date, now: Date) -> String {
        let seconds = Int(now.timeIntervalSince(date).rounded(.down))
        func ago(_ count: Int, _ unit: String) -> String { "\(count) \(unit)\(count == 1 ? "" : "s") ago" }
        switch seconds {
        case ..<5: return "just now"
        case ..<60: return ago(seconds, "second")
        case ..<3600: return ago(seconds / 60, "minute")
        case ..<86_400: return ago(seconds / 3600, "hour")
        default: return ago(seconds / 86_400, "day")
        }
    }
}
