import Foundation
import GRDB
import GRDBSQLite

#if canImport(Glibc)
import Glibc
#endif

/// Writing batches, and the keys and journal progress that batches need.
extension VisitorStore {
    /// How long the per-minute counts are kept: the longest recent window.
    public static let minutesKept = 24 * 60

    /// Writes a batch in one transaction: its rows, its count added to the total, to each of its
    /// countries and to its minutes, and `last_updated` set to `time`; minutes older than a day are
    /// dropped. Every row is a visit: bots' requests come as ``VisitBatch/botsWithoutRows``, sorted out
    /// when they were buffered (``VisitBuffer/kind(of:)``), and are only added to `bots`. Either all of
    /// it is written or none of it.
    ///
    /// With `spillID`, the batch comes from a spill file: the ID is recorded in the same transaction,
    /// and a batch whose ID is already there is not written again (the answer is then `false`), so a
    /// replay that stopped between its commit and removing the file counts nothing twice.
    @discardableResult
    public func write(_ batch: VisitBatch, at time: Date, spillID: String?) throws -> Bool {
        guard !batch.isEmpty else { return true }
        do {
            // SQLite goes on writing through the descriptor it opened even after the file was made
            // read-only: respect the file's permissions as they are now.
            guard access(path, W_OK) == 0 else { throw VisitorStoreError.notWritable(path: path) }
            return try write(batch, at: time, spillID: spillID, in: try currentPool())
        } catch {
            closeAfterFailure()
            throw error
        }
    }

    private func write(_ batch: VisitBatch, at time: Date, spillID: String?, in pool: DatabasePool) throws -> Bool {
        let timestamps = batch.visits.map { UTCTimestamp.format($0.time, milliseconds: true) }
        let lastUpdated = UTCTimestamp.format(time)
        var written = true
        try pool.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                if let span = batch.journal, span.end > span.start {
                    let done = try Int64.fetchOne(
                        db, sql: "SELECT written FROM journal_progress WHERE journal = ?", arguments: [span.id]) ?? 0
                    if done >= Int64(span.end) {
                        written = false
                        return .rollback
                    }
                    guard done == Int64(span.start) else {
                        throw VisitorStoreError.journalGap(journal: span.id, written: done, batchStart: span.start)
                    }
                    try db.execute(
                        sql: """
                            INSERT INTO journal_progress (journal, written, updated_at) VALUES (?, ?, ?)
                            ON CONFLICT (journal) DO UPDATE SET written = excluded.written, updated_at = excluded.updated_at
                            """,
                        arguments: [span.id, Int64(span.end), lastUpdated])
                }
                if let spillID {
                    try db.execute(
                        sql: "INSERT INTO replayed_spills (id, replayed_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                        arguments: [spillID, lastUpdated])
                    guard db.changesCount == 1 else {
                        written = false
                        return .rollback
                    }
                }
                let insertVisit = try db.cachedStatement(
                    sql: """
                        INSERT INTO visitors (ip, user_agent, country, country_code, timestamp)
                        VALUES (?, ?, ?, ?, ?)
                        """)
                let addUnique = try db.cachedStatement(
                    sql: "INSERT INTO daily_uniques (date, hash) VALUES (?, ?) ON CONFLICT (date, hash) DO NOTHING")
                let today = UTCTimestamp.day(time)
                var keys = DailyKeys(today: today)
                var totals = BatchTotals(batch.countsWithoutRows, minutes: batch.minutesWithoutRows)
                var seen = Set<DayHash>()
                for (visit, timestamp) in zip(batch.visits, timestamps) {
                    let day = UTCTimestamp.day(visit.time)
                    let key = try keys.key(for: day, in: db)
                    // A visit from a journal that could not keep the address carries what is stored of it.
                    let storedIP = visit.sealed.map(\.storedIP) ?? storeIP.stored(visit.ip, key: key)
                    try insertVisit.insert(visit, ip: storedIP, timestamp: timestamp)
                    totals.add(visit, day: day)
                    let hash = visit.sealed.map(\.visitorHash) ?? key.map { Self.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: $0) }
                    // A visitor seen before in this batch needs no second look in the table.
                    if let hash {
                        if seen.insert(DayHash(day: day, hash: hash)).inserted {
                            try addUnique.execute(arguments: [keys.text(for: day), Int64(bitPattern: hash)])
                            if db.changesCount == 1 { totals.days[day, default: (0, 0)].uniques += 1 }
                        }
                    }
                }
                try totals.write(into: db, oldestMinuteKept: UTCTimestamp.minute(time) - Self.minutesKept)
                try keys.forgetOld(in: db)
                try db.execute(
                    sql: """
                        UPDATE visitor_stats SET total_visitors = total_visitors + ?,
                            visitors_without_rows = visitors_without_rows + ?, bots = bots + ?, ignored = ignored + ?,
                            last_updated = ?
                        WHERE id = 1
                        """,
                    arguments: [
                        batch.visits.count + batch.visitsWithoutRows, batch.visitsWithoutRows, batch.botsWithoutRows,
                        batch.ignored, lastUpdated,
                    ])
                guard db.changesCount == 1 else { throw VisitorStoreError.missingStatsRow }
                return .commit
            }
        }
        return written
    }

    /// The visitor's hash on a day whose key is `key`: address and user agent, so visitors behind one
    /// address with different browsers count apart.
    public static func visitorHash(ip: String?, userAgent: String, key: [UInt8]) -> UInt64 {
        SipHash.hash(Array("visitor\n\(ip ?? "")\n\(userAgent)".utf8), key: key)
    }

    /// The visitor-hash keys of yesterday, today and tomorrow that exist already, read without waiting
    /// for any writer: what a worker starts with before its writer has made the missing ones.
    public func existingDayKeys(now: Date) throws -> [Int: [UInt8]] {
        let today = UTCTimestamp.day(now)
        return try currentPool().read { db in
            var found: [Int: [UInt8]] = [:]
            for day in (today - 1)...(today + 1) {
                if let key = try Data.fetchOne(
                    db, sql: "SELECT key FROM daily_keys WHERE date = ?", arguments: [UTCTimestamp.dayText(day)])
                {
                    found[day] = Array(key)
                }
            }
            return found
        }
    }

    /// The visitor-hash keys of yesterday, today and tomorrow as of `now`, made if missing: a worker
    /// whose journal cannot keep full addresses hashes them when it answers.
    public func dayKeys(now: Date) throws -> [Int: [UInt8]] {
        try currentPool().writeWithoutTransaction { db in
            var found: [Int: [UInt8]] = [:]
            try db.inTransaction(.immediate) {
                let today = UTCTimestamp.day(now)
                var keys = DailyKeys(today: today)
                for day in (today - 1)...(today + 1) { found[day] = try keys.key(for: day, in: db) }
                return .commit
            }
            return found
        }
    }

    /// How far the journal `id` has been written: the position after its last record in the database.
    public func journalProgress(_ id: String) throws -> UInt64 {
        try currentPool().read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT written FROM journal_progress WHERE journal = ?", arguments: [id]) ?? 0)
        }
    }

    /// Forgets the progress of a journal that has been removed.
    public func forgetJournal(_ id: String) throws {
        _ = try currentPool().write { db in
            try db.execute(sql: "DELETE FROM journal_progress WHERE journal = ?", arguments: [id])
        }
    }
}


extension Statement {
    /// Binds a visit to the `INSERT INTO visitors` statement and runs it.
    ///
    /// Binds through the SQLite C API rather than `execute(arguments:)`: boxing five values per row in
    /// `StatementArguments` cost about a third of the writer's time.
    fileprivate func insert(_ visit: Visit, ip: String?, timestamp: String) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        if let ip {
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
