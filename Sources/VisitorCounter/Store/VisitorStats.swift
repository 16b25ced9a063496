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
    /// Distinct visitors (address and user agent) of the current UTC day.
    public var uniqueVisitorsToday: Int
    public var recent: Recent

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
        recent: Recent = Recent(), uniqueVisitorsToday: Int = 0
    ) {
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
    /// "unique_visitors_today": N, "recent": {"last_5m": N, "last_1h": N, "last_24h": N}, "bots": N}`,
    /// countries by count.
    public var json: String {
        var text = "{\"total_visitors\": \(totalVisitors), \"countries\": {"
        text += countriesByCount.map { "\(JSONText.quoted($0.code)): \($0.visitors)" }.joined(separator: ", ")
        text += "}, \"last_updated\": "
        text += lastUpdated.map { JSONText.quoted(UTCTimestamp.format($0)) } ?? "null"
        text += ", \"unique_visitors_today\": \(uniqueVisitorsToday)"
        text += ", \"recent\": {\"last_5m\": \(recent.last5Minutes), \"last_1h\": \(recent.lastHour), "
        text += "\"last_24h\": \(recent.lastDay)}, \"bots\": \(bots)}"
        return text
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
    public var json: String {
        let countries = self.countries.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\(JSONText.quoted($0.key)): \($0.value)" }.joined(separator: ", ")
        return "{\"date\": \(JSONText.quoted(date)), \"visitors\": \(visitors), \"unique_visitors\": \(uniqueVisitors), "
            + "\"countries\": {\(countries)}}"
    }
}

/// The little JSON writing the project needs, without an encoder's allocations and key-order surprises.
public enum JSONText {
    /// `value` as a JSON string literal.
    public static func quoted(_ value: String) -> String {
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
