/// A local day (days since 1970-01-01, in the store's zone) and a country code: the key of the daily
/// per-country counts.
public struct DayCountry: Hashable, Sendable {
    public var day: Int
    public var code: String

    public init(day: Int, code: String) {
        self.day = day
        self.code = code
    }
}
