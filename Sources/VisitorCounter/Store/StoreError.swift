/// Why a store, SQLite or PostgreSQL, could not be opened or used, beyond what the engine itself reports.
public enum StoreError: Error, CustomStringConvertible {
    case schemaTooNew(found: Int, known: Int)
    case missingStatsRow
    case notWritable(path: String)
    /// A journal batch does not start where the journal's written part ends: something else wrote it
    /// (`written` past the start), or the database lost commits it had answered (`written` short of it).
    case journalGap(journal: String, written: Int64, batchStart: UInt64)
    /// The database's days are in the zone `recorded`; the counter was started with `given`.
    case timeZoneMismatch(recorded: String, given: String)
    /// The database records a zone that this system's tz data does not know.
    case unknownRecordedTimeZone(String)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let known):
            "the database has schema version \(found), newer than the \(known) this build knows: run a newer build"
        case .missingStatsRow:
            "the database has no visitor_stats row: it was not made by visitor-counter or was edited by hand"
        case .notWritable(let path):
            "the database file \(path) is not writable by this user"
        case .journalGap(let journal, let written, let batchStart) where written < batchStart:
            "journal \(journal) is written up to \(written) in the database, but the batch starts at \(batchStart): "
                + "the database lacks batches it had committed (an asynchronous standby promoted, or a backup restored), "
                + "and the journal's ring has reused their part, so they cannot be written again; restart the counter: "
                + "the journal is then set aside as ….rejected and the workers write new visits again"
        case .timeZoneMismatch(let recorded, let given):
            "the database's days are in \(recorded), not \(given): start with --time-zone \(recorded), or run "
                + "`visitor-counter rebuild-days --time-zone \(given)` first to count its days in \(given)"
        case .unknownRecordedTimeZone(let name):
            "the database's days are in \(name), a time zone this system does not know: install tzdata"
        case .journalGap(let journal, let written, let batchStart):
            "journal \(journal) is written up to \(written) in the database, but the batch starts at \(batchStart): "
                + "another process wrote it; the batch is kept for the journal's replay"
        }
    }
}
