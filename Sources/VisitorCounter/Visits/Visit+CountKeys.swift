/// Where a visit adds to the rollups: the keys of the per-minute and the daily per-country counts.
extension Visit {
    /// The minute of the visit (``UTCTimestamp/minute(_:)``).
    public var minute: Int { UTCTimestamp.minute(time) }

    /// The day the visit counts on in the daily rollups: the one place that says which.
    public var day: Int { UTCTimestamp.day(time) }

    /// The visit's day and path, for the daily pages.
    public var dayPage: DayKey { DayKey(day: day, key: path) }

    /// The visit's day and referrer host, for the daily referrers; `nil` when it came from no other site.
    public var dayReferrer: DayKey? { referrer.map { DayKey(day: day, key: $0) } }

    /// The visit's UTC day and country.
    public var dayCountry: DayCountry { DayCountry(day: UTCTimestamp.day(time), code: countryCode) }
}
