/// A day (days since 1970-01-01) and a page's path or a referrer's host: a key of the daily pages and
/// referrers.
public struct DayKey: Hashable, Sendable {
    public var day: Int
    public var key: String

    public init(day: Int, key: String) {
        self.day = day
        self.key = key
    }
}
