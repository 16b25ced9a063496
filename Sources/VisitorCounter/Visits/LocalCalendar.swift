import Foundation

/// Days as the site's owner counts them: the dates of one IANA time zone (`Europe/Berlin`,
/// `Asia/Kathmandu`), with their real lengths, 23 and 25 hours at a change of daylight-saving time.
///
/// A day is numbered as ``UTCTimestamp`` numbers days, days since 1970-01-01 of the proleptic
/// Gregorian calendar, so ``UTCTimestamp/dayText(_:)`` writes a local day's date as well; only which
/// instants belong to it depends on the zone. The zone's rules come from Foundation's ICU: the
/// `zoneinfo64` data built into the binary, unless ICU finds a newer file of its version's (in
/// `/usr/share/icu/icudt76l/`, or where `ICU_TIMEZONE_FILES_DIR` says); not from `/usr/share/zoneinfo`.
public struct LocalCalendar: Sendable, Equatable, CustomStringConvertible {
    /// The zone's name as given (Foundation names UTC `GMT`).
    public let identifier: String
    public let zone: TimeZone

    /// UTC, whose days are the counter's days before it took a zone.
    public static let utc = LocalCalendar(identifier: "UTC", zone: TimeZone(secondsFromGMT: 0)!)

    /// The zone named `identifier`; `nil` when the system's tz data has no such zone. Abbreviations and
    /// offsets (`CET`, `GMT+2`) are not IANA names and are refused, as their days would not follow the
    /// place's changes of daylight-saving time.
    public init?(identifier: String) {
        if identifier == "UTC" {
            self = .utc
            return
        }
        guard identifier.contains("/"), let zone = TimeZone(identifier: identifier), zone.identifier == identifier
        else { return nil }
        self.init(identifier: identifier, zone: zone)
    }

    private init(identifier: String, zone: TimeZone) {
        self.identifier = identifier
        self.zone = zone
    }

    public static func == (left: LocalCalendar, right: LocalCalendar) -> Bool { left.identifier == right.identifier }

    public var description: String { identifier }

    /// The local day `date` falls on.
    public func day(_ date: Date) -> Int {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite else { return UTCTimestamp.day(date) }
        return UTCTimestamp.day(Date(timeIntervalSince1970: seconds + Double(zone.secondsFromGMT(for: date))))
    }

    /// The first instant of local day `day`: its midnight, or the first moment after it where a change
    /// of offset skips midnight.
    public func start(ofDay day: Int) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        // Noon of the day, local time, found from the offset at noon UTC; no zone is 12 hours from that.
        let noonUTC = Double(day) * 86_400 + 43_200
        let noon = Date(timeIntervalSince1970: noonUTC - Double(zone.secondsFromGMT(for: Date(timeIntervalSince1970: noonUTC))))
        return calendar.startOfDay(for: noon)
    }

    /// The instants of local day `day`: from its start to the next day's.
    public func interval(ofDay day: Int) -> Range<Date> {
        start(ofDay: day)..<start(ofDay: day + 1)
    }
}

extension LocalCalendar {
    /// Finds the local days of many instants in a row, as a batch's visits come: they mostly fall on
    /// the day of the one before, so the day's interval is worked out once and each visit costs two
    /// comparisons instead of a look-up of the zone's offset.
    struct Days {
        let calendar: LocalCalendar
        private var day = 0
        private var interval: Range<Double> = 0..<0

        init(_ calendar: LocalCalendar) { self.calendar = calendar }

        mutating func day(_ date: Date) -> Int {
            let seconds = date.timeIntervalSince1970
            if interval.contains(seconds) { return day }
            let found = calendar.day(date)
            guard seconds.isFinite else { return found }
            let bounds = calendar.interval(ofDay: found)
            // Only an interval that holds the instant: a day a change of offset skipped altogether
            // (Samoa's 2011-12-30) has none, and is looked up again each time.
            if bounds.lowerBound.timeIntervalSince1970 <= seconds, seconds < bounds.upperBound.timeIntervalSince1970 {
                day = found
                interval = bounds.lowerBound.timeIntervalSince1970..<bounds.upperBound.timeIntervalSince1970
            }
            return found
        }
    }
}
