import Foundation

/// The geometry of the index page's bar chart of visits per day, in the units of the SVG's viewBox:
/// one bar per day, the busiest day reaching the top.
///
/// The date labels underneath are HTML, not SVG text: text in the SVG would scale with it, unreadably
/// small on a phone.
public struct DailyChart: Sendable {
    public static let width = 600.0
    public static let height = 160.0
    /// The y of the bars' bottom edge.
    public static let baseline = 159.0
    static let top = 4.0
    static let barWidth = 14.0

    public struct Bar: Sendable, Equatable {
        public var date: String
        /// `25 Nov`.
        public var label: String
        public var visitors: Int
        public var uniqueVisitors: Int
        public var x: Double
        public var y: Double
        public var height: Double
        /// The last day, which is today on the page.
        public var isToday: Bool
    }

    public let bars: [Bar]
    /// Five labels, first day to last, evenly spread.
    public let ticks: [String]
    public let maxVisitors: Int
    public let title: String
    /// The chart in words, for its `<desc>`.
    public let summary: String

    public init(days: [DayStats]) {
        let slot = Self.width / Double(max(days.count, 1))
        let maxVisitors = days.map(\.visitors).max() ?? 0
        self.maxVisitors = maxVisitors
        let bars = days.enumerated().map { index, day in
            let height = maxVisitors == 0 ? 0 : (Self.baseline - Self.top) * Double(day.visitors) / Double(maxVisitors)
            return Bar(
                date: day.date, label: Self.label(day.date), visitors: day.visitors, uniqueVisitors: day.uniqueVisitors,
                x: Double(index) * slot + (slot - Self.barWidth) / 2, y: Self.baseline - height, height: height,
                isToday: index == days.count - 1)
        }
        self.bars = bars
        var tickIndices: [Int] = []
        for part in 0...4 where !days.isEmpty {
            let index = Int((Double(part * (days.count - 1)) / 4).rounded())
            if tickIndices.last != index { tickIndices.append(index) }
        }
        self.ticks = tickIndices.map { bars[$0].label }

        if let first = bars.first, let last = bars.last {
            title = "Visits per day, \(first.label) to \(last.label)"
            let total = days.reduce(0) { $0 + $1.visitors }
            if let busiest = bars.max(by: { $0.visitors < $1.visitors }), total > 0 {
                summary = "\(Dashboard.grouped(total)) visits in \(days.count) days. The busiest day was "
                    + "\(busiest.label) with \(Dashboard.grouped(busiest.visitors)); today has \(Dashboard.grouped(last.visitors)) so far."
            } else {
                summary = "No visits in these \(days.count) days."
            }
        } else {
            title = "Visits per day"
            summary = "No days to show."
        }
    }

    /// `2026-11-05` as `5 Nov`.
    static func label(_ date: String) -> String {
        let parts = date.split(separator: "-")
        guard parts.count == 3, let month = Int(parts[1]), (1...12).contains(month), let day = Int(parts[2]) else {
            return date
        }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(day) \(months[month - 1])"
    }

    /// A coordinate with at most one decimal, as the SVG gets it.
    static func number(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(abs(tenths % 10))"
    }
}
