import Foundation
import GRDB

/// The keys of the daily visitor hash, as one batch's transaction needs them.
///
/// A day's key is 16 random bytes that SQLite makes (`randomblob`) the first time a batch has a visit
/// of that day, so every worker uses the same one. Keys exist for today and yesterday only (a batch
/// may still carry yesterday's last visits); each batch deletes older keys and their hashes, after
/// which nobody can tell who visited on those days. A visit older than yesterday, from a late spill
/// replay, gets no key: it is counted but not deduplicated, and `--store-ip hashed` stores `NULL`.
struct DailyKeys {
    let today: Int
    private var keys: [Int: [UInt8]?] = [:]
    private var texts: [Int: String] = [:]

    init(today: Int) { self.today = today }

    mutating func text(for day: Int) -> String {
        if let text = texts[day] { return text }
        let text = UTCTimestamp.dayText(day)
        texts[day] = text
        return text
    }

    mutating func key(for day: Int, in db: Database) throws -> [UInt8]? {
        if let known = keys[day] { return known }
        var key: [UInt8]?
        if BatchPlan.keyedDays(around: today) ~= day {
            let date = text(for: day)
            try db.execute(
                sql: "INSERT INTO daily_keys (date, key) VALUES (?, randomblob(16)) ON CONFLICT (date) DO NOTHING",
                arguments: [date])
            key = try Data.fetchOne(db, sql: "SELECT key FROM daily_keys WHERE date = ?", arguments: [date]).map(Array.init)
        }
        keys[day] = key
        return key
    }

    /// Deletes the keys and hashes of the days before `day`: after that, nobody can tell who visited
    /// on them. Every batch does it (``BatchPlan/forgetBefore``, yesterday), and the writer's timer too.
    static func forget(before day: Int, in db: Database) throws {
        let date = UTCTimestamp.dayText(day)
        try db.execute(sql: "DELETE FROM daily_keys WHERE date < ?", arguments: [date])
        try db.execute(sql: "DELETE FROM daily_uniques WHERE date < ?", arguments: [date])
    }
}
