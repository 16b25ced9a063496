import Foundation
import GRDB
import Synchronization
import Testing

@testable import VisitorCounter

struct SQLiteStoreTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    static func visits(_ codes: [String], at time: Date = Date()) -> VisitBatch {
        VisitBatch(
            counting: codes.enumerated().map { index, code in
                Visit(
                    ip: "203.0.113.\(index % 256)", userAgent: Array("Mozilla/5.0 (X11; Linux x86_64) test".utf8), countryCode: code,
                    countryName: nil, time: time)
            })
    }

    static func userVersion(_ store: SQLiteStore) throws -> Int? {
        try store.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
    }

    /// `total_visitors == count(visitors) + visitors_without_rows == sum(countries)`, read in one snapshot.
    static func expectInvariant(_ store: SQLiteStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (total, rows, sum) = try store.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT total_visitors FROM visitor_stats") ?? -1,
                try Int.fetchOne(db, sql: "SELECT (SELECT count(*) FROM visitors) + visitors_without_rows + visitors_deleted FROM visitor_stats") ?? -1,
                try Int.fetchOne(db, sql: "SELECT coalesce(sum(visitors), 0) FROM visitor_countries") ?? -1
            )
        }
        #expect(total == rows, sourceLocation: sourceLocation)
        #expect(total == sum, sourceLocation: sourceLocation)
    }

    @Test func anEmptyFileGetsTheWholeSchema() throws {
        let store = try SQLiteStore(path: directory.path("new.sqlite"))
        let (version, journalMode, synchronous, tables, indexes) = try store.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"),
                try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            )
        }
        #expect(version == SQLiteStore.schemaVersion)
        #expect(journalMode == "wal")
        #expect(synchronous == 1)  // NORMAL
        #expect(
            tables == [
                "daily_countries", "daily_keys", "daily_pages", "daily_referrers", "daily_uniques", "daily_visits", "journal_progress",
                "replayed_spills", "settings", "visitor_countries", "visitor_pages", "visitor_referrers", "visitor_stats", "visitors",
                "visits_per_minute",
            ])
        #expect(indexes == ["visitors_country_code", "visitors_timestamp"])
        #expect(try store.stats() == VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil))
    }

    @Test func aFileOfTheFirstVersionIsUpgradedWithItsCounts() throws {
        let path = directory.path("old.sqlite")
        do {
            let old = try SQLiteStore(path: path, busyTimeout: 1, schemaVersion: 1)
            #expect(try Self.userVersion(old) == 1)
        }
        // Fill it the way the original design did: rows plus a JSON column of counts.
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO visitors (ip, user_agent, country, country_code, timestamp) VALUES
                        ('192.0.2.1', 'a', 'United States', 'US', '2024-03-20T11:00:00.000Z'),
                        ('192.0.2.2', 'b', 'United States', 'US', '2024-03-20T11:30:00.000Z'),
                        ('192.0.2.3', 'c', 'United Kingdom', 'GB', '2024-03-20T11:45:00.000Z');
                    UPDATE visitor_stats SET total_visitors = 3, countries = '{"US": 2, "GB": 1}',
                        last_updated = '2024-03-20T12:00:00Z';
                    """)
        }
        try queue.close()

        let store = try SQLiteStore(path: path)
        #expect(try Self.userVersion(store) == SQLiteStore.schemaVersion)
        // The visits before pages were counted are all of the index page.
        var upgraded = VisitorStats(totalVisitors: 3, countries: ["US": 2, "GB": 1], lastUpdated: UTCTimestamp.parse("2024-03-20T12:00:00Z"))
        upgraded.pages = ["/": 3]
        #expect(try store.stats() == upgraded)
        #expect(try store.dailyPages(from: UTCTimestamp.parseDay("2024-03-20")!, to: UTCTimestamp.parseDay("2024-03-20")!)
            == [DayPages(date: "2024-03-20", pages: ["/": 3], referrers: [:])])
        try store.write(Self.visits(["GB", "DE"]))
        #expect(try store.stats().countries == ["US": 2, "GB": 2, "DE": 1])
        try Self.expectInvariant(store)
    }

    /// Readers that never pause starve SQLite's passive checkpoint: the WAL grows with every batch.
    /// ``SQLiteStore/checkpointIfLarge(limit:)`` keeps it bounded all the same.
    @Test func theWALStaysBoundedUnderReadsThatNeverPause() throws {
        let store = try SQLiteStore(path: directory.path("wal.sqlite"))
        let stop = SharedCount(0)
        let readers = DispatchGroup()
        // Threads of their own: blocking reads on Dispatch's pool would hold up other tests' tasks.
        for _ in 0..<2 {
            readers.enter()
            Thread.start(named: "wal-reader") {
                defer { readers.leave() }
                while stop.load() == 0 {
                    _ = try? store.read { db in
                        _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM visitor_countries")
                        usleep(3000)  // each read overlaps the other reader's next one
                    }
                }
            }
        }
        defer {
            stop.add(1)
            readers.wait()
        }
        // 500 visits write about 40 KiB of WAL; the bound is set low so that a few batches show it.
        let batch = Self.visits(Array(repeating: "US", count: 500))
        let limit = 256 << 10
        for _ in 0..<30 { try store.write(batch) }
        let starved = store.walSize()
        var results: [SQLiteStore.Checkpoint] = []
        var largest = 0
        for _ in 0..<40 {
            try store.write(batch)
            let result = try store.checkpointIfLarge(limit: limit)
            results.append(result)
            let size = store.walSize()
            if result == .done { #expect(size == 0, "a TRUNCATE checkpoint left \(size) bytes") }
            if result != .heldUp { largest = max(largest, size) }
        }
        let done = results.filter { $0 == .done }.count
        let heldUp = results.filter { $0 == .heldUp }.count
        print("WAL under reads that never pause: \(starved >> 10) KiB without the explicit checkpoint, at most \(largest >> 10) KiB with it; \(done) checkpoints done, \(heldUp) held up past the busy timeout")
        #expect(starved > 2 * limit, "the readers did not starve the passive checkpoint: \(starved) bytes")
        #expect(largest <= limit, "the WAL reached \(largest) bytes")
        // Readers are let in while it waits, so it gets through nearly always; but a reader thread that a
        // machine busy with other tests leaves unscheduled for the whole busy timeout holds one up.
        #expect(done >= 1, "\(done) checkpoints done, \(heldUp) held up")
        #expect(try store.stats().totalVisitors == 35_000)
    }

    /// A `TRUNCATE` checkpoint held up by a reader holds the write lock while it waits; another
    /// worker's write that comes meanwhile waits for it, and does not fail.
    @Test func aCheckpointHeldUpByAReaderNeverFailsAnotherWorkersWrite() throws {
        let path = directory.path("checkpoint.sqlite")
        // The checkpoint may hold the lock a fifth of its 5 s busy timeout, 1 s; the other worker waits up
        // to 2 s. A checkpoint that waited for the reader (3 s) would fail the other's write.
        let checkpointer = try SQLiteStore(path: path, busyTimeout: 5)
        let other = try SQLiteStore(path: path, busyTimeout: 2)
        try checkpointer.write(Self.visits(Array(repeating: "US", count: 500)))
        // A reader that keeps an old snapshot open for 3 s, longer than anyone's busy timeout.
        let reader = try DatabaseQueue(path: path)
        let reading = DispatchSemaphore(value: 0)
        let readerDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM visitors")
                reading.signal()
                Thread.sleep(forTimeInterval: 3)
            }
            readerDone.signal()
        }
        reading.wait()
        try checkpointer.write(Self.visits(["GB"]))
        let writes = DispatchGroup()
        let failure = Mutex<Error?>(nil)
        // The other worker writes while the checkpoint waits for the reader.
        DispatchQueue.global().async(group: writes) {
            usleep(100_000)
            do { try other.write(Self.visits(["DE"])) } catch { failure.withLock { $0 = error } }
        }
        let started = ContinuousClock.now
        #expect(try checkpointer.checkpointIfLarge(limit: 0) == .heldUp)
        let held = ContinuousClock.now - started
        writes.wait()
        readerDone.wait()
        #expect(failure.withLock { $0 } == nil, "the other write failed: \(String(describing: failure.withLock { $0 }))")
        // Its 1 s busy timeout counts the sleeps SQLite asks for, and a loaded machine lengthens them:
        // the bound is what tells it from waiting for the reader's 3 s.
        #expect(held < .milliseconds(2500), "the checkpoint held the lock for \(held)")
        #expect(try other.stats().countries == ["US": 500, "GB": 1, "DE": 1])
    }

    @Test func aFileFromANewerBuildIsRefused() throws {
        let path = directory.path("future.sqlite")
        _ = try SQLiteStore(path: path)
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA user_version = 99") }
        try queue.close()
        #expect(throws: StoreError.self) { try SQLiteStore(path: path) }
    }

    @Test func theStatsJSONHasTheAPIShape() {
        let stats = VisitorStats(
            totalVisitors: 150, countries: ["GB": 50, "US": 100],
            lastUpdated: UTCTimestamp.parse("2024-03-20T12:00:00Z"), bots: 7,
            recent: .init(last5Minutes: 1, lastHour: 2, lastDay: 3), uniqueVisitorsToday: 4, ignored: 9,
            timeZone: "Asia/Kathmandu",
            periods: .init(today: 5, yesterday: 6, last7Days: 30, previous7Days: 20, last30Days: 110, previous30Days: 0))
        #expect(
            stats.json
                == #"{"total_visitors": 150, "countries": {"US": 100, "GB": 50}, "last_updated": "2024-03-20T12:00:00Z", "#
                + #""unique_visitors_today": 4, "recent": {"last_5m": 1, "last_1h": 2, "last_24h": 3}, "bots": 7, "ignored": 9, "#
                + #""time_zone": "Asia/Kathmandu", "periods": {"today": 5, "yesterday": 6, "last_7_days": 30, "#
                + #""previous_7_days": 20, "last_30_days": 110, "previous_30_days": 0}, "pages": {}, "referrers": {}}"#)
        #expect(
            VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil).json
                == #"{"total_visitors": 0, "countries": {}, "last_updated": null, "unique_visitors_today": 0, "recent": {"last_5m": 0, "last_1h": 0, "last_24h": 0}, "bots": 0, "ignored": 0, "#
                + #""time_zone": "UTC", "periods": {"today": 0, "yesterday": 0, "last_7_days": 0, "previous_7_days": 0, "last_30_days": 0, "previous_30_days": 0}, "pages": {}, "referrers": {}}"#)
    }

    static func visit(_ code: String, at time: Date, userAgent: String = "Mozilla/5.0 (X11; Linux x86_64) test") -> Visit {
        Visit(trustedIP: "192.0.2.1", userAgent: userAgent, country: code, countryCode: code, time: time)
    }

}
