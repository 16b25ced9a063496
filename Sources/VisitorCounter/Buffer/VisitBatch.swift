/// Visits handed from the buffer to the writer in one piece, with their per-country counts already summed.
public struct VisitBatch: Sendable, Equatable {
    public var visits: [Visit]
    /// Visits per country code in ``visits``.
    public var countryCounts: [String: Int]

    public init(visits: [Visit] = [], countryCounts: [String: Int] = [:]) {
        self.visits = visits
        self.countryCounts = countryCounts
    }

    /// Builds a batch and sums its per-country counts.
    public init(counting visits: [Visit]) {
        self.visits = visits
        self.countryCounts = visits.reduce(into: [:]) { counts, visit in counts[visit.countryCode, default: 0] += 1 }
    }

    public var count: Int { visits.count }
    public var isEmpty: Bool { visits.isEmpty }

    mutating func append(_ visit: Visit) {
        visits.append(visit)
        countryCounts[visit.countryCode, default: 0] += 1
    }
}
