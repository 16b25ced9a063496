import Foundation

/// What `rebuild-days` did: the daily rollup, with its pages and referrers, counted again in another
/// zone from the rows of `visitors` (``CounterStore/rebuildDays(in:)``).
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

/// The days, the days' countries, pages and referrers of many rows, in one zone, summed as the rows
/// are read.
struct DayCounts {
    private var days: LocalCalendar.Days
    var visits: [Int: Int] = [:]
    var countries: [DayCountry: Int] = [:]
    private var allPages: [DayKey: Int] = [:]
    private var allReferrers: [DayKey: Int] = [:]
    var rows = 0

    init(_ calendar: LocalCalendar) { days = LocalCalendar.Days(calendar) }

    mutating func add(timestamp: String, countryCode: String, path: String, referrer: String?) {
        guard let time = UTCTimestamp.parse(timestamp) else { return }
        let day = days.day(time)
        visits[day, default: 0] += 1
        countries[DayCountry(day: day, code: countryCode), default: 0] += 1
        allPages[DayKey(day: day, key: path), default: 0] += 1
        if let referrer { allReferrers[DayKey(day: day, key: referrer), default: 0] += 1 }
        rows += 1
    }

    /// The days' pages, at most ``BatchPlan/maxKeysPerDay`` a day as the writer keeps them: here the
    /// ones with the most visits, the rest added to ``BatchPlan/otherKey``.
    var pages: [DayKey: Int] { Self.bounded(allPages) }
    var referrers: [DayKey: Int] { Self.bounded(allReferrers) }

    static func bounded(_ counts: [DayKey: Int]) -> [DayKey: Int] {
        var bounded: [DayKey: Int] = [:]
        for (day, keys) in Dictionary(grouping: counts, by: \.key.day) {
            let ranked = keys.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.key < $1.key.key }
            for (rank, entry) in ranked.enumerated() {
                let key = rank < BatchPlan.maxKeysPerDay ? entry.key : DayKey(day: day, key: BatchPlan.otherKey)
                bounded[key, default: 0] += entry.value
            }
        }
        return bounded
    }
}
