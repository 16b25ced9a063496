/// How long the writer waits before trying a failed write again: exponential back-off, capped, with
/// jitter so that the workers of one server, which fail together, do not retry together.
public struct RetryPolicy: Sendable, Codable, Equatable {
    public var firstDelay: Duration
    public var maxDelay: Duration

    /// From half a second, doubling, up to 30 s: a lock held for a moment costs half a second, a disk
    /// that stays full is tried twice a minute.
    public static let standard = RetryPolicy(firstDelay: .milliseconds(500), maxDelay: .seconds(30))

    public init(firstDelay: Duration, maxDelay: Duration) {
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
    }

    /// The wait after `failures` failures in a row (1 or more): `firstDelay` doubled `failures - 1`
    /// times, at most `maxDelay`, then a random part of it taken off ("equal jitter"): the result is
    /// between half the delay and the whole of it. `random` is a number in 0..<1.
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        let doublings = min(max(failures - 1, 0), 30)
        let delay = min(firstDelay * Double(1 << doublings), maxDelay)
        return delay / 2 + delay / 2 * random
    }
}
