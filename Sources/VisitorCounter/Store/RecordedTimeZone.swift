/// The time zone a database's days are in, recorded in the database itself (`settings`, the row
/// `time_zone`), so that every process that opens it (the workers, `stats`, `export`, the counters of
/// other hosts on one PostgreSQL database) counts the same days.
///
/// The days are rolled up by their local date when a batch is written, so a database's days are in
/// one zone only: a counter started with another is refused rather than mixing them. A database made
/// before there was a zone has UTC days and records `UTC` when it is migrated; a new one records the
/// zone of the first counter that opens it. `rebuild-days` counts a database's days again in another zone.
public enum RecordedTimeZone {
    /// The name of the row in `settings`.
    static let setting = "time_zone"

    /// The calendar to use, given what the database records (`nil`: nothing yet) and the zone asked
    /// for (`nil`: whatever the database records, as `stats` and `export` ask); `record` when the
    /// database records nothing and the zone asked for should be recorded.
    static func settle(recorded: String?, given: LocalCalendar?) throws -> (calendar: LocalCalendar, record: Bool) {
        guard let recorded else { return (given ?? .utc, given != nil) }
        guard let calendar = LocalCalendar(identifier: recorded) else { throw StoreError.unknownRecordedTimeZone(recorded) }
        if let given, given != calendar {
            throw StoreError.timeZoneMismatch(recorded: recorded, given: given.identifier)
        }
        return (calendar, false)
    }
}
