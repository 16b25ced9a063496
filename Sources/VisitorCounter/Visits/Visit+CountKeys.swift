/// Where a visit adds to the rollups: the keys of the per-minute and the daily per-country counts.
extension Visit {
    /// The minute of the visit (``UTCTimestamp/minute(_:)``).
    public var minute: Int { UTCTimestamp.minute(time) }

    /// The visit's local day in `calendar`, and its country.
    public func dayCountry(in calendar: LocalCalendar) -> DayCountry { DayCountry(day: calendar.day(time), code: countryCode) }
}
