import Foundation
import GRDBSQLite
import VisitorCounter

/// The limit the SQLite writer is measured against: the same rows, indexes and unique visitors, on the
/// same schema (a file the store made), written through SQLite's C API with statements prepared once
/// and nothing allocated per row. Per batch: `BEGIN IMMEDIATE`, each row, each visitor's hash under the
/// day's key into `daily_uniques`, the stats row, `COMMIT`. What it leaves out is what the store adds
/// around that: the journal's progress, the rollups, the day keys, the old minutes and keys deleted.
final class LimitWriter {
    private var db: OpaquePointer?
    private var insertVisit: OpaquePointer?
    private var insertUnique: OpaquePointer?
    private var updateStats: OpaquePointer?
    private var begin: OpaquePointer?
    private var commit: OpaquePointer?
    private let k0 = UInt64.random(in: 0...UInt64.max)
    private let k1 = UInt64.random(in: 0...UInt64.max)
    /// Reused for every row: the timestamp's text and the visitor hash's message.
    private var timestamp: [UInt8] = []
    private var message: [UInt8] = []

    /// Opens `path`, a database ``SQLiteStore`` made, as the store's writer opens it.
    init(path: String) throws {
        try check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil), "open")
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = NORMAL")
        sqlite3_busy_timeout(db, 5_000)
        insertVisit = try prepare(
            "INSERT INTO visitors (ip, user_agent, country, country_code, timestamp) VALUES (?, ?, ?, ?, ?)")
        insertUnique = try prepare("INSERT INTO daily_uniques (date, hash) VALUES (?, ?) ON CONFLICT (date, hash) DO NOTHING")
        updateStats = try prepare("UPDATE visitor_stats SET total_visitors = total_visitors + ?, last_updated = ? WHERE id = 1")
        begin = try prepare("BEGIN IMMEDIATE")
        commit = try prepare("COMMIT")
        timestamp.reserveCapacity(32)
        message.reserveCapacity(1_024)
    }

    deinit {
        for statement in [insertVisit, insertUnique, updateStats, begin, commit] { sqlite3_finalize(statement) }
        sqlite3_close_v2(db)
    }

    /// Writes `batch`'s rows in one transaction; answers the unique visitors that went in.
    @discardableResult
    func write(_ batch: VisitBatch) throws -> Int {
        try step(begin, "BEGIN")
        var uniques = 0
        let day = Array(UTCTimestamp.dayText(UTCTimestamp.day(Date())).utf8)
        for visit in batch.visits {
            timestamp.removeAll(keepingCapacity: true)
            UTCTimestamp.appendFormatted(visit.time, milliseconds: true, to: &timestamp)
            bind(visit.ip, insertVisit, 1)
            bind(visit.userAgent, insertVisit, 2)
            bind(visit.country, insertVisit, 3)
            bind(visit.countryCode, insertVisit, 4)
            timestamp.withUnsafeBufferPointer { bytes in
                _ = sqlite3_bind_text(insertVisit, 5, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
            }
            try step(insertVisit, "INSERT INTO visitors")

            message.removeAll(keepingCapacity: true)
            message.append(contentsOf: "visitor\n".utf8)
            message.append(contentsOf: (visit.ip ?? "").utf8)
            message.append(UInt8(ascii: "\n"))
            message.append(contentsOf: visit.userAgent.utf8)
            let hash = message.withUnsafeBytes { sipHash($0, k0: k0, k1: k1) }
            day.withUnsafeBufferPointer { bytes in
                _ = sqlite3_bind_text(insertUnique, 1, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
            }
            sqlite3_bind_int64(insertUnique, 2, Int64(bitPattern: hash))
            try step(insertUnique, "INSERT INTO daily_uniques")
            uniques += Int(sqlite3_changes(db))
        }
        sqlite3_bind_int64(updateStats, 1, Int64(batch.visits.count))
        bind(UTCTimestamp.format(Date()), updateStats, 2)
        try step(updateStats, "UPDATE visitor_stats")
        try step(commit, "COMMIT")
        return uniques
    }

    private func bind(_ text: String?, _ statement: OpaquePointer?, _ index: Int32) {
        guard var text else {
            sqlite3_bind_null(statement, index)
            return
        }
        text.withUTF8 { bytes in
            _ = sqlite3_bind_text(statement, index, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
        }
    }

    private func step(_ statement: OpaquePointer?, _ what: String) throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else { throw LimitError(call: what, message: String(cString: sqlite3_errmsg(db))) }
    }

    private func prepare(_ sql: String) throws -> OpaquePointer? {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil), sql)
        return statement
    }

    private func execute(_ sql: String) throws {
        try check(sqlite3_exec(db, sql, nil, nil, nil), sql)
    }

    private func check(_ code: Int32, _ what: String) throws {
        guard code == SQLITE_OK else {
            throw LimitError(call: what, message: db.map { String(cString: sqlite3_errmsg($0)) } ?? "code \(code)")
        }
    }
}

struct LimitError: Error, CustomStringConvertible {
    var call: String
    var message: String
    var description: String { "\(call): \(message)" }
}

/// SipHash-2-4 of `message` under the key `k0`, `k1`, a word at a time: what the store's `SipHash`
/// computes, written here so that the limit makes no call per byte into another module.
private func sipHash(_ message: UnsafeRawBufferPointer, k0: UInt64, k1: UInt64) -> UInt64 {
    var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
    var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
    var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
    var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1
    func rotated(_ value: UInt64, _ count: UInt64) -> UInt64 { (value << count) | (value >> (64 - count)) }
    func round() {
        v0 &+= v1; v1 = rotated(v1, 13); v1 ^= v0; v0 = rotated(v0, 32)
        v2 &+= v3; v3 = rotated(v3, 16); v3 ^= v2
        v0 &+= v3; v3 = rotated(v3, 21); v3 ^= v0
        v2 &+= v1; v1 = rotated(v1, 17); v1 ^= v2; v2 = rotated(v2, 32)
    }
    func compress(_ word: UInt64) {
        v3 ^= word
        round()
        round()
        v0 ^= word
    }
    let whole = message.count / 8 * 8
    var offset = 0
    while offset < whole {
        compress(UInt64(littleEndian: message.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        offset += 8
    }
    var last = UInt64(message.count & 0xff) << 56
    for index in whole..<message.count { last |= UInt64(message[index]) << (8 * UInt64(index - whole)) }
    compress(last)
    v2 ^= 0xff
    for _ in 0..<4 { round() }
    return v0 ^ v1 ^ v2 ^ v3
}

/// SQLite's `SQLITE_TRANSIENT`, a macro Swift cannot import: SQLite copies the bound bytes.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
