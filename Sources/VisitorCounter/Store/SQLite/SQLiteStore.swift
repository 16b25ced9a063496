import Foundation
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The SQLite file that every worker process of the counter writes its batches into: the embedded
/// ``CounterStore``, for one host.
///
/// Opened in WAL mode with `synchronous=NORMAL` and a busy timeout, so readers never wait for the
/// writer and writers of several processes queue for the lock instead of failing. Every write is one
/// `BEGIN IMMEDIATE` transaction that takes the write lock up front: a transaction that started as a
/// reader and then tried to write could fail with `SQLITE_BUSY` without waiting.
public final class SQLiteStore: CounterStore {
    public let path: String
    /// The journals, spill files and audit log sit beside the file.
    public var localFiles: String { path }
    /// What of each address is stored (`--store-ip`).
    public let storeIP: StoreIPMode
    /// The zone whose local days the rollup counts, as the database records it (``RecordedTimeZone``).
    public let calendar: LocalCalendar
    private let configuration: Configuration
    let busyTimeout: TimeInterval
    private let schemaVersion: Int
    /// The open connections; `nil` after a failed write, so the next use opens the file afresh.
    private let pool: Mutex<DatabasePool?>

    /// How long a write waits for another process's transaction before failing with `SQLITE_BUSY`.
    public static let defaultBusyTimeout: TimeInterval = 5
    /// The size of the WAL file past which a write is followed by a `TRUNCATE` checkpoint.
    public static let walCheckpointBytes = 32 << 20

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Parameter timeZone: the zone of the days (`serve --time-zone`): refused with
    ///   ``StoreError/timeZoneMismatch(recorded:given:)`` when the database records another, recorded
    ///   when it records none. `nil` takes the zone the database records, UTC if none.
    public convenience init(
        path: String, busyTimeout: TimeInterval = defaultBusyTimeout, storeIP: StoreIPMode = .full,
        timeZone: LocalCalendar? = .utc
    ) throws {
        try self.init(
            path: path, busyTimeout: busyTimeout, schemaVersion: SQLiteStore.schemaVersion, storeIP: storeIP,
            timeZone: timeZone)
    }

    /// Opens the database migrated up to `schemaVersion` only: tests make older files with it.
    init(
        path: String, busyTimeout: TimeInterval, schemaVersion: Int, storeIP: StoreIPMode = .full,
        timeZone: LocalCalendar? = .utc
    ) throws {
        self.storeIP = storeIP
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "visitors"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // The writer's connection (the pool's readers are read-only) keeps 16 MiB of pages rather
            // than SQLite's 2 MiB: a batch's inserts into the two indexes of `visitors` and into
            // `daily_uniques` land all over those trees, and went back to the file for their pages.
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA cache_size = -16384") }
        }
        self.path = path
        self.configuration = configuration
        self.busyTimeout = busyTimeout
        self.schemaVersion = schemaVersion
        let opened = try SQLiteStore.openPool(path: path, configuration: configuration, timeout: busyTimeout)
        try opened.writeWithoutTransaction { db in try SQLiteStore.migrate(db, upTo: schemaVersion) }
        self.calendar = try SQLiteStore.settleTimeZone(opened, given: timeZone, schemaVersion: schemaVersion)
        self.pool = Mutex(opened)
    }

    /// The open pool, or a newly opened one after ``closeAfterFailure()``.
    func currentPool() throws -> DatabasePool {
        if let pool = pool.withLock({ $0 }) { return pool }
        let opened = try SQLiteStore.openPool(path: path, configuration: configuration, timeout: busyTimeout)
        try opened.writeWithoutTransaction { db in try SQLiteStore.migrate(db, upTo: schemaVersion) }
        return pool.withLock { pool in
            if let pool { return pool }
            pool = opened
            return opened
        }
    }

    /// Drops the connections, so the next write opens the file again: after the file was made
    /// read-only, replaced or its disk remounted, the old descriptors would go on failing (or writing
    /// to a file that is no longer there).
    func closeAfterFailure() {
        pool.withLock { $0 = nil }
    }

    /// Opens the pool, retrying while another process holds the lock.
    ///
    /// When several workers open a brand-new file at once, switching it to WAL mode can fail with
    /// `SQLITE_BUSY` straight away: SQLite does not call the busy handler for that step.
    private static func openPool(path: String, configuration: Configuration, timeout: TimeInterval) throws -> DatabasePool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }

}
