/// Write durations counted in buckets, as Prometheus histograms have them.
public struct LatencyHistogram: Sendable, Equatable {
    /// Bucket upper bounds in seconds: from a small batch on an idle disk to a write that waited out the
    /// busy timeout.
    public static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Observations per bucket (not cumulative); the last counts those above every bound.
    public var counts: [Int] = Array(repeating: 0, count: bounds.count + 1)
    public var sumMicroseconds = 0

    public init() {}

    public var count: Int { counts.reduce(0, +) }

    public mutating func record(_ duration: Duration) {
        let seconds = duration.inSeconds
        let bucket = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
        counts[bucket] += 1
        sumMicroseconds += Int(seconds * 1_000_000)
    }
}
