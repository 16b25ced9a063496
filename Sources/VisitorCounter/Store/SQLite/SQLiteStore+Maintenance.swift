import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// Upkeep: the WAL checkpoint, old keys, and retention's deletes.
extension SQLiteStore {
    /// How long a checkpoint waits for readers, holding the write lock.
    public var checkpointBusyTimeout: TimeInterval { busyTimeout / 5 }

    /// The size of the WAL file now, in bytes; 0 when there is none.
    public func walSize() -> Int {
        var status = stat()
        return stat(path + "-wal", &status) == 0 ? Int(status.st_size) : 0
    }

    /// What ``checkpointIfLarge(limit:)`` did.
    public typealias Checkpoint = StoreUpkeep

    /// A checkpoint when the WAL has grown past ``walCheckpointBytes``.
    public func upkeep() throws -> StoreUpkeep { try checkpointIfLarge() }

    /// Runs a `TRUNCATE` checkpoint when the WAL file has grown past ``walCheckpointBytes``.
    ///
    /// SQLite's automatic checkpoint (after a commit that takes the WAL past 1,000 pages) is passive: it
    /// copies what no reader still needs, and starts the WAL over only when no reader is using it. Under
    /// reads that never pause, that moment may not come and the WAL grows. A `TRUNCATE` checkpoint waits
    /// (up to the busy timeout) for the readers of old snapshots to finish; new readers meanwhile read
    /// the database file itself, so they do not hold it up, and the WAL file is then cut to zero.
    ///
    /// While it waits for those readers it holds the write lock, so other workers' writes wait for it.
    /// It waits at most ``checkpointBusyTimeout`` (a fifth of the writers' busy timeout) and gives up:
    /// a write that comes meanwhile is delayed by at most that, never failed for it.
    @discardableResult
    public func checkpointIfLarge(limit: Int = walCheckpointBytes) throws -> Checkpoint {
        guard walSize() > limit else { return .notNeeded }
        let result = try currentPool().writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA busy_timeout = \(Int(checkpointBusyTimeout * 1000))")
            defer { try? db.execute(sql: "PRAGMA busy_timeout = \(Int(busyTimeout * 1000))") }
            return try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        // The row is (busy, WAL frames, frames checkpointed); busy is 1 when readers held it up.
        return result.map { ($0[0] as Int?) == 0 } == true ? .done : .heldUp
    }

    /// Deletes the visitor-hash keys and hashes of the days before yesterday, as every batch does: the
    /// writer also calls this on a timer, so they go even on days without a visit.
    public func forgetOldKeys(now: Date) throws {
        try currentPool().writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                try DailyKeys.forget(before: calendar.day(now) - 1, in: db)
                return .commit
            }
        }
    }

    /// Deletes at most `limit` rows of `visitors` older than `cutoff`, in one short transaction, and
    /// adds them to `visitors_deleted`; answers how many it deleted. Totals, countries and the daily
    /// rollup are not touched.
    public func deleteRows(olderThan cutoff: Date, limit: Int) throws -> Int {
        let timestamp = UTCTimestamp.format(cutoff, milliseconds: true)
        return try currentPool().writeWithoutTransaction { db in
            var deleted = 0
            try db.inTransaction(.immediate) {
                try db.execute(
                    sql: "DELETE FROM visitors WHERE id IN (SELECT id FROM visitors WHERE timestamp < ? ORDER BY timestamp LIMIT ?)",
                    arguments: [timestamp, limit])
                deleted = db.changesCount
                try db.execute(
                    sql: "UPDATE visitor_stats SET visitors_deleted = visitors_deleted + ? WHERE id = 1", arguments: [deleted])
                return .commit
            }
            return deleted
        }
    }
}
