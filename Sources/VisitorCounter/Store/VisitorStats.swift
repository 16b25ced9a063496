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

    public init(totalVisitors: Int, countries: [String: Int], lastUpdated: Date?, visitsWithoutRows: Int = 0) {
        self.totalVisitors = totalVisitors
        self.countries = countries
        self.lastUpdated = lastUpdated
        self.visitsWithoutRows = visitsWithoutRows
    }

    /// Countries with the most visits first, ties in code order.
    public var countriesByCount: [(code: String, visitors: Int)] {
        countries.map { (code: $0.key, visitors: $0.value) }
            .sorted { $0.visitors != $1.visitors ? $0.visitors > $1.visitors : $0.code < $1.code }
    }

    /// `{"total_visitors": N, "countries": {"US": N, ...}, "last_updated": "…Z" | null}`, countries by count.
    public var json: String {
        var text = "{\"total_visitors\": \(totalVisitors), \"countries\": {"
        text += countriesByCount.map { "\(JSONText.quoted($0.code)): \($0.visitors)" }.joined(separator: ", ")
        text += "}, \"last_updated\": "
        text += lastUpdated.map { JSONText.quoted(UTCTimestamp.format($0)) } ?? "null"
        text += "}"
        return text
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
