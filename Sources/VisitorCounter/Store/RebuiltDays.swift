import Foundation

/// What `rebuild-days` did: the daily rollup counted again, in another zone, from the rows of
/// `visitors` (``CounterStore/rebuildDays(in:)``).
///
/// Only the days that rows are kept for can be counted again: from `firstDate` (the old zone's day of
/// the oldest row) on, the days are the new zone's; the days before it keep their old dates. Rebuilt
/// days have no unique visitors (0): the keys that told visitors apart are gone. Visits counted
/// without a row (a worker's buffer at its bound) are not in the rebuilt days.
public struct RebuiltDays: Sendable, Equatable {
    public var zone: String
    /// The first date rebuilt; `nil` when there were no rows, and only the zone was recorded.
    public var firstDate: String?
    /// The rows counted.
    public var rows: Int

    public var description: String {
        guard let firstDate else {
            return "no visit rows to count again: only the zone is recorded; from now on days are in \(zone)"
        }
        return "the days from \(firstDate) on are counted again in \(zone) from \(rows) visit rows, with no unique "
            + "visitors; the days before \(firstDate) keep their dates"
    }
}

/// The days and the days' countries of many rows, in one zone, summed as the rows are read.
struct DayCounts {
    private var days: LocalCalendar.Days
    var visits: [Int: Int] = [:]
    var countries: [DayCountry: Int] = [:]
    var rows = 0

    init(_ calendar: LocalCalendar) { days = LocalCalendar.Days(calendar) }

    mutating func add(timestamp: String, countryCode: String) {
        guard let time = UTCTimestamp.parse(timestamp) else { return }
        let day = days.day(time)
        visits[day, default: 0] += 1
        countries[DayCountry(day: day, code: countryCode), default: 0] += 1
        rows += 1
    }
}
