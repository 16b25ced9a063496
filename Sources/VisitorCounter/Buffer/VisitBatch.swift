import Foundation

/// Visits handed from the buffer to the writer in one piece, with their per-country counts already summed.
///
/// A batch may also carry visits counted without a row: when the buffer is at its memory bound, a visit
/// still adds to the totals and to its country, but its row (address, user agent, time) is not kept.
public struct VisitBatch: Sendable, Equatable {
    /// The rows to insert into `visitors`.
    public var visits: [Visit]
    /// Visits per country code, those with a row and those without.
    public var countryCounts: [String: Int]
    /// Visits counted in the totals and in ``countryCounts`` that have no row in ``visits``.
    public var visitsWithoutRows: Int
    /// When the oldest visit in the batch was answered: how long the batch has waited, for health checks.
    public var oldestVisit: Date?

    public init(visits: [Visit] = [], countryCounts: [String: Int] = [:], visitsWithoutRows: Int = 0, oldestVisit: Date? = nil) {
        self.visits = visits
        self.countryCounts = countryCounts
        self.visitsWithoutRows = visitsWithoutRows
        self.oldestVisit = oldestVisit ?? visits.lazy.map(\.time).min()
    }

    /// Builds a batch of rows and sums its per-country counts.
    public init(counting visits: [Visit]) {
        self.init(
            visits: visits,
            countryCounts: visits.reduce(into: [:]) { counts, visit in counts[visit.countryCode, default: 0] += 1 })
    }

    /// Every visit the batch counts, with a row or without.
    public var count: Int { visits.count + visitsWithoutRows }
    public var isEmpty: Bool { count == 0 }

    /// Adds a visit with its row.
    mutating func append(_ visit: Visit) {
        visits.append(visit)
        countWithoutRow(visit)
        visitsWithoutRows -= 1
    }

    /// Adds a visit to the counts only.
    mutating func countWithoutRow(_ visit: Visit) {
        countryCounts[visit.countryCode, default: 0] += 1
        visitsWithoutRows += 1
        if oldestVisit == nil { oldestVisit = visit.time }
    }

    /// Adds `other`'s rows and counts to this batch.
    mutating func merge(_ other: VisitBatch) {
        visits += other.visits
        countryCounts.merge(other.countryCounts, uniquingKeysWith: +)
        visitsWithoutRows += other.visitsWithoutRows
        oldestVisit = [oldestVisit, other.oldestVisit].compactMap { $0 }.min()
    }
}
