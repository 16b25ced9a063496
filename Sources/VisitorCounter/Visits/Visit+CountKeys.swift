/// Where a visit adds to the rollups: the keys of the per-minute and the daily per-country counts.
extension Visit {
    /// The minute of the visit (``UTCTimestamp/minute(_:)``).
    public var minute: Int { UTCTimestamp.minute(time) }

    /// The visit's UTC day and country.
    public var dayCountry: DayCountry { DayCountry(day: UTCTimestamp.day(time), code: countryCode) }
}
