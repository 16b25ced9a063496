import Foundation
import Synchronization

/// One PostgreSQL database that the counters of several hosts write into and read from: the
/// ``CounterStore`` for more than one web server.
///
/// The tables, their names and their meanings are SQLite's (``SQLiteStore``); only the types are
/// PostgreSQL's. Every batch is one transaction whose row locks are taken in one global order (the
/// day's keys, the unique visitors by day and hash, the countries, the minutes, the days, the days'
/// countries, the stats row last), so two hosts' batches queue for each other but never deadlock.
///
/// Three connections, each behind a lock: the writer's, one for reads (the stats cache, the commands),
/// so a slow write never holds up a read, and one for the daily route's reads on request threads, which
/// never wait for its lock (``daily(from:to:)``). After any failure the connection is
/// closed and the next call opens a new one: libpq gives no way to tell a broken connection from a
/// healthy one short of using it, and a failed transaction must be rolled back anyway.
public final class PostgresStore: CounterStore {
    /// Where the journals, spill files and audit log go: a name in the state directory.
    public let localFiles: String
    /// The hosts, port, database and user of the URI, for messages; never the password.
    public let target: String
    /// What of each address is stored (`--store-ip`).
    public let storeIP: StoreIPMode
    /// The zone whose local days the rollup counts, as the database records it (``RecordedTimeZone``).
    public let calendar: LocalCalendar
    private let uri: String
    private let writer: Mutex<PostgresConnection?>
    private let reader: Mutex<PostgresConnection?>
    private let requestReader: Mutex<PostgresConnection?>
    /// What the writer's connection reuses from batch to batch; see ``WriterState``.
    let writerState = Mutex(WriterState())

    /// Connects, and brings the schema up to ``PostgresStore/schemaVersion``.
    ///
    /// - Parameters:
    ///   - stateDirectory: a local folder of this host's, for the journals and the audit log.
    ///   - timeZone: the zone of the days, as ``SQLiteStore/init(path:busyTimeout:storeIP:timeZone:)`` takes it.
    public init(
        uri: String, stateDirectory: String, storeIP: StoreIPMode = .full,
        schemaVersion: Int = PostgresStore.schemaVersion, timeZone: LocalCalendar? = .utc
    ) throws {
        self.uri = uri
        self.target = try PostgresConnection.describe(uri: uri)
        self.localFiles = StoreLocation.postgres(uri: uri, stateDirectory: stateDirectory).localFiles
        self.storeIP = storeIP
        // The writer's connection, opened here to migrate and to settle the zone before the store is made.
        let connection = try PostgresConnection(uri: uri)
        try Self.migrate(connection, upTo: schemaVersion)
        self.calendar = try Self.settleTimeZone(connection, given: timeZone, schemaVersion: schemaVersion)
        self.writer = Mutex(connection)
        self.reader = Mutex(nil)
        self.requestReader = Mutex(nil)
    }

    /// Runs `body` on the writer's connection, opened if needed; closed again if anything fails.
    func onWriter<T: Sendable>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try Self.using(writer, uri: uri, body)
    }

    /// Runs `body` on the readers' connection, opened if needed; closed again if anything fails.
    func onReader<T: Sendable>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try Self.using(reader, uri: uri, body)
    }

    /// Runs `body` on the request threads' connection, opened if needed, if no other thread is using it;
    /// `nil` at once if one is. A request thread never queues behind a read that waits for a server
    /// that is gone: the one that is stuck is stuck alone, for as long as the connection's timeouts allow.
    func onRequestThread<T: Sendable>(_ body: (PostgresConnection) throws -> T) throws -> T? {
        try requestReader.withLockIfAvailable { connection -> T in try Self.use(&connection, uri: uri, body) }
    }

    private static func using<T: Sendable>(
        _ slot: borrowing Mutex<PostgresConnection?>, uri: String, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        try slot.withLock { connection -> T in try use(&connection, uri: uri, body) }
    }

    private static func use<T: Sendable>(
        _ connection: inout sending PostgresConnection?, uri: String, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        do {
            let open = try connection ?? PostgresConnection(uri: uri)
            connection = open
            return try body(open)
        } catch {
            // Closing a connection in a transaction rolls the transaction back.
            connection = nil
            throw error
        }
    }

    /// Runs `body` in a transaction on `connection`: committed when `body` answers `true`, rolled
    /// back when it answers `false`; a throw leaves the rollback to closing the connection.
    static func transaction(
        _ connection: PostgresConnection, _ begin: String = "BEGIN", _ body: () throws -> Bool
    ) throws -> Bool {
        try connection.execute(begin)
        let commit = try body()
        try connection.execute(commit ? "COMMIT" : "ROLLBACK")
        return commit
    }

    /// How far the journal `id` has been written.
    public func journalProgress(_ id: String) throws -> UInt64 {
        try onReader { connection in
            UInt64(
                try connection.execute("SELECT written FROM journal_progress WHERE journal = $1", [id]).firstInteger ?? 0)
        }
    }

    public func forgetJournal(_ id: String) throws {
        try onWriter { connection in
            _ = try connection.execute("DELETE FROM journal_progress WHERE journal = $1", [id])
        }
    }

    /// The keys of yesterday, today and tomorrow that exist already.
    public func existingDayKeys(now: Date) throws -> [Int: [UInt8]] {
        let today = calendar.day(now)
        return try onReader { connection in try Self.readKeys(Array(BatchPlan.keyedDays(around: today)), connection) }
    }

    /// The keys of yesterday, today and tomorrow, made if missing.
    public func dayKeys(now: Date) throws -> [Int: [UInt8]] {
        let today = calendar.day(now)
        return try onWriter { connection in
            var keys: [Int: [UInt8]] = [:]
            _ = try Self.transaction(connection) {
                keys = try Self.makeKeys(Array(BatchPlan.keyedDays(around: today)), connection)
                return true
            }
            return keys
        }
    }

    /// Makes the keys of `days` that are missing and reads them all, in the caller's transaction.
    ///
    /// Race-free across hosts: `ON CONFLICT DO NOTHING` waits for another transaction that is inserting
    /// the same day, and the `SELECT` after it, a statement of its own, sees the key that won. 122 of the
    /// 128 bits are random (`gen_random_uuid()`, from the server's strong random source, built into
    /// PostgreSQL 13 and later, where `gen_random_bytes` would need the pgcrypto extension).
    static func makeKeys(_ days: [Int], _ connection: PostgresConnection) throws -> [Int: [UInt8]] {
        guard !days.isEmpty else { return [:] }
        return keys(from: try connection.pipeline(makeKeysStatements(days))[1])
    }

    /// The two statements of ``makeKeys(_:_:)``, for a pipeline: the insert, then the read whose rows
    /// ``keys(from:)`` takes.
    static func makeKeysStatements(_ days: [Int]) -> [(sql: String, parameters: [String?])] {
        let dates = PostgresArray.text(days.sorted().map(UTCTimestamp.dayText))
        return [
            (
                """
                INSERT INTO daily_keys (date, key) SELECT d, uuid_send(gen_random_uuid()) FROM unnest($1::text[]) AS d
                ON CONFLICT (date) DO NOTHING
                """,
                [dates]
            ),
            ("SELECT date, key FROM daily_keys WHERE date = ANY($1::text[])", [dates]),
        ]
    }

    static func readKeys(_ days: [Int], _ connection: PostgresConnection) throws -> [Int: [UInt8]] {
        keys(from: try connection.execute(makeKeysStatements(days)[1].sql, [PostgresArray.text(days.map(UTCTimestamp.dayText))]))
    }

    /// The keys in the rows of `SELECT date, key FROM daily_keys`.
    static func keys(from rows: PostgresRows) -> [Int: [UInt8]] {
        var keys: [Int: [UInt8]] = [:]
        for row in rows.rows {
            guard let date = row[0].flatMap(UTCTimestamp.parseDay), let key = row[1].flatMap(PostgresArray.bytes) else { continue }
            keys[date] = key
        }
        return keys
    }

    /// Deletes the keys and hashes of the days before yesterday.
    public func forgetOldKeys(now: Date) throws {
        let yesterday = UTCTimestamp.dayText(calendar.day(now) - 1)
        try onWriter { connection in
            _ = try Self.transaction(connection) {
                try Self.forgetKeys(before: yesterday, connection)
                return true
            }
        }
    }

    static func forgetKeys(before date: String, _ connection: PostgresConnection) throws {
        try connection.execute("DELETE FROM daily_keys WHERE date < $1", [date])
        try connection.execute("DELETE FROM daily_uniques WHERE date < $1", [date])
    }

    /// Deletes at most `limit` rows older than `cutoff` and adds them to `visitors_deleted`, in one
    /// transaction. Two hosts deleting at once delete each row once: the second's `DELETE` skips the
    /// rows the first removed, and counts only its own.
    public func deleteRows(olderThan cutoff: Date, limit: Int) throws -> Int {
        let timestamp = UTCTimestamp.format(cutoff, milliseconds: true)
        return try onWriter { connection in
            var deleted = 0
            _ = try Self.transaction(connection) {
                deleted = try connection.execute(
                    """
                    DELETE FROM visitors WHERE id IN
                        (SELECT id FROM visitors WHERE timestamp < $1 ORDER BY timestamp LIMIT $2)
                    """,
                    [timestamp, String(limit)]
                ).affectedRows
                try connection.execute(
                    "UPDATE visitor_stats SET visitors_deleted = visitors_deleted + $1 WHERE id = 1", [String(deleted)])
                return true
            }
            return deleted
        }
    }

    /// PostgreSQL needs no upkeep from the writer: autovacuum does it.
    public func upkeep() throws -> StoreUpkeep { .notNeeded }
}
