/// Why the store could not be opened or used, beyond what SQLite itself reports.
public enum VisitorStoreError: Error, CustomStringConvertible {
    case schemaTooNew(found: Int, known: Int)
    case missingStatsRow
    case notWritable(path: String)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let known):
            "the database has schema version \(found), newer than the \(known) this build knows: run a newer build"
        case .missingStatsRow:
            "the database has no visitor_stats row: it was not made by visitor-counter or was edited by hand"
        case .notWritable(let path):
            "the database file \(path) is not writable by this user"
        }
    }
}
