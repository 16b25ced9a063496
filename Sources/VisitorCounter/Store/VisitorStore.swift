import Foundation
import GRDB
import GRDBSQLite

/// The SQLite file that every worker process of the counter writes its batches into.
///
/// Opened in WAL mode with `synchronous=NORMAL` and a busy timeout, so readers never wait for the
/// writer and writers of several processes queue for the lock instead of failing. Every write is one
/// `BEGIN IMMEDIATE` transaction that takes the write lock up front: a transaction that started as a
/// reader and then tried to write could fail with `SQLITE_BUSY` without waiting.
public final class VisitorStore: Sendable {
    public let path: String
    private let pool: DatabasePool

    /// How long a write waits for another process's transaction before failing with `SQLITE_BUSY`.
    public static let defaultBusyTimeout: TimeInterval = 5

    /// Opens (creating if needed) and migrates the database at `path`.
    public convenience init(path: String, busyTimeout: TimeInterval = defaultBusyTimeout) throws {
        try self.init(path: path, busyTimeout: busyTimeout, schemaVersion: VisitorStore.schemaVersion)
    }

    /// Opens the database migrated up to `schemaVersion` only: tests make older files with it.
    init(path: String, busyTimeout: TimeInterval, schemaVersion: Int) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "visitors"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        self.path = path
        self.pool = try VisitorStore.openPool(path: path, configuration: configuration, timeout: busyTimeout)
        try pool.writeWithoutTransaction { db in
            try VisitorStore.migrate(db, upTo: schemaVersion)
        }
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

    /// Writes a batch in one transaction: its rows, its count added to the total and to each of its
    /// countries, and `last_updated` set to `time`. Either all of it is written or none of it.
    public func write(_ batch: VisitBatch, at time: Date = Date()) throws {
        guard !batch.isEmpty else { return }
        let timestamps = batch.visits.map { UTCTimestamp.format($0.time, milliseconds: true) }
        let lastUpdated = UTCTimestamp.format(time)
        try pool.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                let insertVisit = try db.cachedStatement(
                    sql: """
                        INSERT INTO visitors (ip, user_agent, country, country_code, timestamp)
                        VALUES (?, ?, ?, ?, ?)
                        """)
                for (visit, timestamp) in zip(batch.visits, timestamps) {
                    try insertVisit.insert(visit, timestamp: timestamp)
                }
                let addToCountry = try db.cachedStatement(
                    sql: """
                        INSERT INTO visitor_countries (country_code, visitors) VALUES (?, ?)
                        ON CONFLICT (country_code) DO UPDATE SET visitors = visitors + excluded.visitors
                        """)
                for (code, visitors) in batch.countryCounts {
                    try addToCountry.execute(arguments: [code, visitors])
                }
                try db.execute(
                    sql: "UPDATE visitor_stats SET total_visitors = total_visitors + ?, last_updated = ? WHERE id = 1",
                    arguments: [batch.count, lastUpdated])
                guard db.changesCount == 1 else { throw VisitorStoreError.missingStatsRow }
                return .commit
            }
        }
    }

    /// The totals, read in one snapshot; costs the same whatever the number of visit rows.
    public func stats() throws -> VisitorStats {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT total_visitors, last_updated FROM visitor_stats WHERE id = 1")
            else { throw VisitorStoreError.missingStatsRow }
            var countries: [String: Int] = [:]
            for country in try Row.fetchAll(db, sql: "SELECT country_code, visitors FROM visitor_countries") {
                countries[country[0]] = country[1]
            }
            let lastUpdated: String? = row[1]
            return VisitorStats(
                totalVisitors: row[0],
                countries: countries,
                lastUpdated: lastUpdated.flatMap(UTCTimestamp.parse))
        }
    }

    /// The number of rows in `visitors`: a full scan, for checks and tests, never for the request path.
    public func visitorRowCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM visitors") ?? 0 }
    }

    /// Runs `body` with a read-only view of the database, for checks and tests.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }
}

extension Statement {
    /// Binds a visit to the `INSERT INTO visitors` statement and runs it.
    ///
    /// Binds through the SQLite C API rather than `execute(arguments:)`: boxing five values per row in
    /// `StatementArguments` cost about a third of the writer's time.
    fileprivate func insert(_ visit: Visit, timestamp: String) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        if let ip = visit.ip {
            bindText(ip, at: 1)
        } else {
            sqlite3_bind_null(statement, 1)
        }
        bindText(visit.userAgent, at: 2)
        bindText(visit.country, at: 3)
        bindText(visit.countryCode, at: 4)
        bindText(timestamp, at: 5)
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(sqlite3_db_handle(statement))),
                sql: sql)
        }
    }

    private func bindText(_ text: String, at index: Int32) {
        var text = text
        text.withUTF8 { bytes in
            _ = sqlite3_bind_text(sqliteStatement, index, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
        }
    }
}

/// SQLite's `SQLITE_TRANSIENT`, a macro Swift cannot import: SQLite copies the bound bytes.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
