import Foundation

/// Where the counts are kept, as `--database` names it: a SQLite file, or a PostgreSQL database given
/// by a libpq connection URI together with a local folder for this host's own files.
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    /// `stateDirectory` holds the journals, spill files and audit log, which must outlive the process
    /// on this host's own disk.
    case postgres(uri: String, stateDirectory: String)

    /// Whether `database` is a libpq connection URI rather than a file path.
    public static func isConnectionURI(_ database: String) -> Bool {
        database.hasPrefix("postgresql://") || database.hasPrefix("postgres://")
    }

    /// Reads `--database` and `--state-directory`.
    public init(database: String, stateDirectory: String?) throws(StoreLocationError) {
        guard Self.isConnectionURI(database) else {
            self = .sqlite(path: database)
            return
        }
        guard let stateDirectory, !stateDirectory.isEmpty else { throw .noStateDirectory }
        do {
            _ = try PostgresConnection.describe(uri: database)
        } catch {
            throw .invalidURI("\(error)")
        }
        self = .postgres(uri: database, stateDirectory: stateDirectory)
    }

    /// For the commands that only read (`stats`, `export`): they write no journal, so a URI needs no
    /// state directory.
    public static func reading(_ database: String) throws(StoreLocationError) -> StoreLocation {
        try StoreLocation(database: database, stateDirectory: isConnectionURI(database) ? "/nonexistent" : nil)
    }

    /// The path prefix of the journals, spill files and audit log (``CounterStore/localFiles``).
    public var localFiles: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(_, let stateDirectory): URL(fileURLWithPath: stateDirectory).appendingPathComponent("postgresql").path
        }
    }

    /// The folder that must exist and be writable: the file's, or the state directory.
    public var localDirectory: String {
        URL(fileURLWithPath: localFiles).deletingLastPathComponent().path
    }

    /// For logs and messages: the file, or the URI's hosts, port, database and user without a password.
    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let uri, _): "PostgreSQL (\((try? PostgresConnection.describe(uri: uri)) ?? "an invalid URI"))"
        }
    }

    /// Opens the store (connecting and migrating as needed), its days in `timeZone`, or in the zone the
    /// database records when it is `nil` (``RecordedTimeZone``).
    public func open(storeIP: StoreIPMode = .full, timeZone: LocalCalendar? = .utc) throws -> any CounterStore {
        switch self {
        case .sqlite(let path):
            try SQLiteStore(path: path, storeIP: storeIP, timeZone: timeZone)
        case .postgres(let uri, let stateDirectory):
            try PostgresStore(uri: uri, stateDirectory: stateDirectory, storeIP: storeIP, timeZone: timeZone)
        }
    }
}

/// Why `--database` and `--state-directory` do not name a usable store.
public enum StoreLocationError: Error, CustomStringConvertible {
    case noStateDirectory
    case invalidURI(String)

    public var description: String {
        switch self {
        case .noStateDirectory:
            "a PostgreSQL --database needs a local folder for this host's journals and audit log: "
                + "give --state-directory /var/lib/visitor-counter (systemd's StateDirectory= sets $STATE_DIRECTORY, "
                + "which is the default)"
        case .invalidURI(let message):
            message
        }
    }
}
