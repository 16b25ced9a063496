import Foundation
import GRDB
import Synchronization
import Testing

@testable import VisitorCounter

/// The store's behaviour, the same test code against SQLite and PostgreSQL: ``CounterStoreTests`` runs
/// it on SQLite, in the unit loop, and ``PostgresCounterStoreTests`` on a throw-away cluster. A test
/// added here is added to both suites (`--filter CounterStoreTests` runs both).
struct CounterStoreContract {
    /// 2027-01-15T00:00:00Z, a midnight.
    static let midnight = Date(timeIntervalSince1970: 1_800_000_000 - 28_800)

    static func visit(_ code: String, at time: Date, ip: String = "203.0.113.77", userAgent: String = "Mozilla/5.0 (X11; Linux x86_64) test") -> Visit {
        Visit(trustedIP: ip, userAgent: userAgent, country: code, countryCode: code, time: time)
    }

    func anEmptyDatabaseGetsTheWholeSchema(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        // The cluster and the folder go when `database` does: not before the end of the test.
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        #expect(try store.stats() == VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil))
        let tables = switch kind {
        case .sqlite: try database.column("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        case .postgresql: try database.column("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename COLLATE \"C\"")
        }
        let common = [
            "daily_countries", "daily_keys", "daily_pages", "daily_referrers", "daily_uniques", "daily_visits", "journal_progress",
            "replayed_spills", "settings", "visitor_countries", "visitor_pages", "visitor_referrers", "visitor_stats", "visitors",
            "visits_per_minute",
        ]
        #expect(tables.compactMap { $0 }.filter { $0 != "schema_migrations" } == common)
        // Opening again changes nothing.
        _ = try database.open()
        #expect(try database.integers("SELECT count(*) FROM visitor_stats") == [1])
    }

    func theInvariantHoldsAfterManyBatches(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let codes = ["US", "GB", "DE", "XX", "JP"]
        var expected: [String: Int] = [:]
        for round in 0..<200 {
            var batch = SQLiteStoreTests.visits((0..<(round % 37 + 1)).map { codes[($0 * 7 + round) % codes.count] })
            if round % 10 == 0 { batch.countWithoutRow(Self.visit("FR", at: Date())) }
            try store.write(batch)
            expected.merge(batch.countryCounts, uniquingKeysWith: +)
        }
        #expect(try store.deleteRows(olderThan: Date() + 60, limit: 100) == 100)
        let (total, rows, countries) = try database.invariant()
        #expect(total == rows)
        #expect(total == countries)
        let stats = try store.stats()
        #expect(stats.countries == expected)
        #expect(stats.totalVisitors == expected.values.reduce(0, +))
        #expect(stats.visitsWithoutRows == 20)
    }

    func aBatchWritesItsRowsAndTheTime(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let visitTime = Date(timeIntervalSince1970: 1_710_936_000.5)
        let writeTime = Date(timeIntervalSince1970: 1_710_936_060)
        try store.write(SQLiteStoreTests.visits(["FR"], at: visitTime), at: writeTime)
        #expect(try database.column("SELECT ip FROM visitors") == ["203.0.113.0"])
        #expect(try database.column("SELECT country FROM visitors") == ["France"])
        #expect(try database.column("SELECT timestamp FROM visitors") == ["2024-03-20T12:00:00.500Z"])
        #expect(try store.stats().lastUpdated == writeTime)
        let exported = try store.visitPage(after: VisitCursor(timestamp: "", id: Int64.min), before: "\u{10FFFF}", limit: 10)
        #expect(exported.map(\.userAgent) == ["Mozilla/5.0 (X11; Linux x86_64) test"])
        #expect(exported.map(\.countryCode) == ["FR"])
    }

    func theRecentWindowsSlideWithTheClock(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let start = Date(timeIntervalSince1970: 1_800_000_000)  // on a minute
        // One visit 1, 3, 10, 90 and 1,500 minutes before `start`, two in the minute of `start`.
        let ages = [1, 3, 10, 90, 1500, 0, 0]
        try store.write(VisitBatch(counting: ages.map { Self.visit("US", at: start - Double($0 * 60)) }), at: start)
        #expect(try store.stats(now: start).recent == .init(last5Minutes: 4, lastHour: 5, lastDay: 6))
        #expect(try store.stats(now: start + 59).recent == .init(last5Minutes: 4, lastHour: 5, lastDay: 6))
        #expect(try store.stats(now: start + 3 * 60).recent == .init(last5Minutes: 3, lastHour: 5, lastDay: 6))
        #expect(try store.stats(now: start + 51 * 60).recent == .init(last5Minutes: 0, lastHour: 4, lastDay: 6))
        #expect(try store.stats(now: start + 23 * 3600).recent == .init(last5Minutes: 0, lastHour: 0, lastDay: 5))
        #expect(try store.stats(now: start + 2 * 86400).recent == .init())
        #expect(try store.stats(now: start + 2 * 86400).totalVisitors == 7)
        // A reader whose clock is behind the writer's: minutes after its own are in no window. The visit
        // 1,500 minutes old was older than a day when it was written, and kept in no minute.
        #expect(try store.stats(now: start - 2 * 60).recent == .init(last5Minutes: 1, lastHour: 2, lastDay: 3))
    }

    func minutesOlderThanADayAreDroppedAsBatchesAreWritten(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        try store.write(VisitBatch(counting: [Self.visit("US", at: start)]), at: start)
        try store.write(VisitBatch(counting: [Self.visit("US", at: start + 86400)]), at: start + 86400)
        #expect(try database.integers("SELECT minute FROM visits_per_minute") == [Int(start.timeIntervalSince1970) / 60 + 1440])
        try store.write(VisitBatch(counting: (0..<3).map { Self.visit("US", at: start + 86400 + Double($0 * 600)) }), at: start + 86400 + 1800)
        // Drops the minutes up to start + 86400 + 600: three of the four visits above.
        try store.write(VisitBatch(counting: [Self.visit("US", at: start + 2 * 86400 + 300)]), at: start + 2 * 86400 + 600)
        // The stats row's sum of the minutes lost the dropped ones with them.
        #expect(try database.integers("SELECT minute_visitors FROM visitor_stats") == [2])
        #expect(try database.integers("SELECT sum(visitors) FROM visits_per_minute") == [2])
        #expect(try store.stats(now: start + 2 * 86400 + 600).recent == .init(last5Minutes: 0, lastHour: 1, lastDay: 2))
    }

    func botsAreCountedApartAndNotStored(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let now = Date()
        let agents = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.5.0", "",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ]
        // Bots are sorted out as the buffer takes them: the store writes what the batch holds.
        var buffer = VisitBuffer(batchSize: 10, flushInterval: .seconds(1), sorting: .standard, now: .now)
        for agent in agents { _ = buffer.append(Self.visit("DE", at: now, userAgent: agent), now: .now) }
        let taken = buffer.takeAll()
        var batch = try #require(taken)
        batch.countWithoutRow(Self.visit("FR", at: now))
        try store.write(batch)
        let stats = try store.stats()
        #expect(stats.totalVisitors == 2)
        #expect(stats.bots == 3)
        #expect(stats.countries == ["DE": 1, "FR": 1])
        #expect(stats.recent.last5Minutes == 2)
        #expect(try store.visitorRowCount() == 1)
        let (total, rows, countries) = try database.invariant()
        #expect(total == rows && total == countries)
    }

    /// The owner's requests (``Visit/ignored``), journaled and replayed too, add to `ignored` and to
    /// nothing else: no row, no country, no window, no day, no unique visitor.
    func theOwnersRequestsAreCountedInIgnoredOnly(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let now = Date()
        var buffer = VisitBuffer(batchSize: 10, flushInterval: .seconds(1), sorting: .standard, now: .now)
        for (code, ignored, agent) in [("DE", true, "curl/8.5.0"), ("DE", true, LocalStack.browser), ("US", false, LocalStack.browser)] {
            var visit = Self.visit(code, at: now, ip: ignored ? "198.51.100.7" : "203.0.113.9", userAgent: agent)
            visit.ignored = ignored
            #expect(buffer.kind(of: visit) == (ignored ? .ignored : .row))
            _ = buffer.append(visit, now: .now)
        }
        let taken = buffer.takeAll()
        let batch = try #require(taken)
        #expect(batch.ignored == 2 && batch.visits.count == 1 && batch.count == 3)
        try store.write(batch)
        let stats = try store.stats()
        #expect(stats.ignored == 2)
        #expect(stats.totalVisitors == 1)
        #expect(stats.bots == 0)
        #expect(stats.countries == ["US": 1])
        #expect(stats.recent.lastDay == 1)
        #expect(stats.uniqueVisitorsToday == 1)
        let today = UTCTimestamp.day(now)
        #expect(try store.daily(from: today, to: today).map(\.visitors) == [1])
        #expect(try store.visitorRowCount() == 1)
        let (total, rows, countries) = try database.invariant()
        #expect(total == rows && total == countries)
    }

    /// A database of the version before `ignored` (SQLite 6, PostgreSQL 1) gets the column, at 0, with
    /// its counts kept, and counts the owner's requests from then on.
    func aDatabaseBeforeIgnoredIsMigrated(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        try database.makeVersion(sqlite: 6, postgresql: 1, then: "UPDATE visitor_stats SET total_visitors = 4, bots = 5")
        #expect(try database.column("SELECT count(*) FROM visitor_stats WHERE total_visitors = 4") == ["1"])
        let store = try database.open()
        var stats = try store.stats()
        #expect(stats.totalVisitors == 4 && stats.bots == 5 && stats.ignored == 0)
        var batch = VisitBatch()
        batch.ignored = 2
        try store.write(batch)
        stats = try store.stats()
        #expect(stats.totalVisitors == 4 && stats.bots == 5 && stats.ignored == 2)
    }

    /// A database of the version before `minute_visitors` (SQLite 7, PostgreSQL 2) gets the sum of the
    /// minutes it has, and its last day's window stays what it was.
    func aDatabaseBeforeMinuteVisitorsIsMigrated(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let now = Self.midnight
        let minute = UTCTimestamp.minute(now)
        try database.makeVersion(
            sqlite: 7, postgresql: 2,
            then: "INSERT INTO visits_per_minute (minute, visitors) VALUES (\(minute - 1500), 1), (\(minute - 700), 2), (\(minute - 3), 4)")
        let store = try database.open()
        #expect(try database.integers("SELECT minute_visitors FROM visitor_stats") == [7])
        #expect(try store.stats(now: now).recent == .init(last5Minutes: 4, lastHour: 4, lastDay: 6))
        try store.write(VisitBatch(counting: [Self.visit("US", at: now)]), at: now)
        #expect(try store.stats(now: now).recent == .init(last5Minutes: 5, lastHour: 5, lastDay: 7))
        #expect(try database.integers("SELECT minute_visitors FROM visitor_stats") == [7])
    }

    /// The visits counted before pages were are all of `/`: all time and on each day of the rollup.
    func aDatabaseBeforePagesIsMigrated(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let fill = """
            UPDATE visitor_stats SET total_visitors = 7;
            INSERT INTO daily_visits (date, visitors, unique_visitors) VALUES ('2026-11-01', 3, 1), ('2026-11-02', 4, 2);
            """
        switch kind {
        case .sqlite:
            _ = try SQLiteStore(path: database.sqlitePath, busyTimeout: 1, schemaVersion: SQLiteStore.schemaVersion - 1)
            let queue = try DatabaseQueue(path: database.sqlitePath)
            try await queue.write { db in try db.execute(sql: fill) }
            try queue.close()
        case .postgresql:
            let connection = try PostgresConnection(uri: database.cluster!.uri())
            try PostgresStore.migrate(connection, upTo: PostgresStore.schemaVersion - 1)
            for statement in fill.split(separator: ";") where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                try connection.execute(String(statement))
            }
        }
        let store = try database.open()
        #expect(try store.stats().pages == ["/": 7])
        let first = try #require(UTCTimestamp.parseDay("2026-11-01"))
        #expect(
            try store.dailyPages(from: first, to: first + 1) == [
                DayPages(date: "2026-11-01", pages: ["/": 3], referrers: [:]),
                DayPages(date: "2026-11-02", pages: ["/": 4], referrers: [:]),
            ])
        #expect(try database.column("SELECT count(*) FROM visitors WHERE path <> '/'") == ["0"])
        try store.write(VisitBatch(counting: [Self.pageVisit("/new.html", referrer: "news.example.com", at: Date())]))
        #expect(try store.stats().pages == ["/": 7, "/new.html": 1])
    }

    func theDailyRollupSplitsAtUTCMidnightAndFillsEmptyDays(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let midnight = Self.midnight
        let day = UTCTimestamp.day(midnight)
        let batch = VisitBatch(counting: [
            Self.visit("US", at: midnight - 30), Self.visit("GB", at: midnight - 1),
            Self.visit("US", at: midnight + 1, ip: "198.51.100.1"),
        ])
        try store.write(batch, at: midnight + 2)
        #expect(try store.daily(from: day - 1, to: day + 1) == [
            DayStats(date: "2027-01-14", visitors: 2, uniqueVisitors: 1, countries: ["US": 1, "GB": 1]),
            DayStats(date: "2027-01-15", visitors: 1, uniqueVisitors: 1, countries: ["US": 1]),
            DayStats(date: "2027-01-16", visitors: 0, uniqueVisitors: 0, countries: [:]),
        ])
        #expect(try store.stats(now: midnight + 60).uniqueVisitorsToday == 1)
        var rows: [DailyRow] = []
        try store.forEachDailyRow(first: "2027-01-14", last: "2027-01-15") { rows.append($0) }
        #expect(rows.map(\.countryCode) == ["GB", "US", "US"])
    }

    func keysAreRotatedDailyAndDeletedAfterTwoDays(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let day = UTCTimestamp.day(Self.midnight)
        for offset in 0..<3 {
            let time = Self.midnight + Double(offset) * 86_400 + 3600
            // The same visitor twice a day.
            try store.write(VisitBatch(counting: [Self.visit("DE", at: time), Self.visit("DE", at: time + 60)]), at: time + 61)
        }
        #expect(try database.column("SELECT date FROM daily_keys ORDER BY date") == ["2027-01-16", "2027-01-17"])
        let hashes = try database.column("SELECT hash FROM daily_uniques ORDER BY date")
        #expect(hashes.count == 2 && hashes[0] != hashes[1], "the same visitor hashes alike on two days")
        let days = try store.daily(from: day, to: day + 2)
        #expect(days.map(\.visitors) == [2, 2, 2])
        #expect(days.map(\.uniqueVisitors) == [1, 1, 1])
        // The keys a worker reads at its start are the ones the batches used.
        let keys = try store.existingDayKeys(now: Self.midnight + 2 * 86_400 + 3600)
        #expect(Set(keys.keys) == [day + 1, day + 2])
        #expect(try store.dayKeys(now: Self.midnight + 2 * 86_400 + 3600)[day + 2] == keys[day + 2])
    }

    /// A journal replayed days late brings visitors' hashes of a day whose key is gone: the visitor counts
    /// as unique that day, and no hash of a day before yesterday is left behind, even in a batch after
    /// one that already cleared the old days.
    func lateHashesOfOldDaysAreCountedAndNotKept(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let day = UTCTimestamp.day(Self.midnight)
        let now = Self.midnight + 3 * 86_400 + 3600
        try store.write(VisitBatch(counting: [Self.visit("DE", at: now)]), at: now + 1)
        var late = Self.visit("FR", at: Self.midnight + 3600)
        late.sealed = Visit.Sealed(storedIP: nil, visitorHash: 42)
        try store.write(VisitBatch(counting: [late]), at: now + 2)
        #expect(try database.column("SELECT date FROM daily_uniques ORDER BY date") == ["2027-01-18"])
        #expect(try store.daily(from: day, to: day).map(\.uniqueVisitors) == [1])
        #expect(try store.stats().totalVisitors == 2)
    }

    /// A sealed visit whose day had no key when it was answered counts as a visit but not as a unique
    /// visitor, though the key exists when it is written: its address is gone, so no hash can be made.
    /// (PostgreSQL hashed the missing address until the batch plan, and counted every such visitor of a
    /// user agent as one.)
    func aSealedVisitWithoutAHashIsNoUniqueVisitor(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open(storeIP: .hashed)
        let day = UTCTimestamp.day(Self.midnight)
        let time = Self.midnight + 3600
        try store.write(VisitBatch(counting: [Self.visit("DE", at: time, ip: "192.0.2.1")]), at: time)
        var sealed = Self.visit("FR", at: time + 1, ip: "192.0.2.2")
        sealed.ip = nil
        sealed.sealed = Visit.Sealed(storedIP: nil, visitorHash: nil)
        try store.write(VisitBatch(counting: [sealed, sealed]), at: time + 2)
        let days = try store.daily(from: day, to: day)
        #expect(days.map(\.visitors) == [3])
        #expect(days.map(\.uniqueVisitors) == [1])
        #expect(try database.integers("SELECT count(*) FROM daily_uniques") == [1])
    }

    /// The same visitors in batch after batch count once a day, and a batch that was not written (its
    /// journal span was written before) leaves no trace: its new visitor counts when it comes again.
    func returningVisitorsCountOnceADayAndAnUnwrittenBatchTeachesNothing(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let other = try database.open()
        let day = UTCTimestamp.day(Self.midnight)
        let time = Self.midnight + 3600
        let alice = Self.visit("DE", at: time, ip: "192.0.2.1")
        let bob = Self.visit("FR", at: time, ip: "192.0.2.2")
        var first = VisitBatch(counting: [alice])
        first.journal = JournalSpan(id: "j", start: 0, end: 1)
        #expect(try store.write(first, at: time))
        #expect(try other.write(VisitBatch(counting: [alice]), at: time))
        // The span is written: the batch, Bob in it, is not.
        var again = VisitBatch(counting: [alice, bob])
        again.journal = JournalSpan(id: "j", start: 0, end: 1)
        #expect(try store.write(again, at: time) == false)
        for _ in 0..<3 { #expect(try store.write(VisitBatch(counting: [alice, bob]), at: time)) }
        #expect(try other.write(VisitBatch(counting: [bob]), at: time))
        let nextDay = time + 86_400
        #expect(try store.write(VisitBatch(counting: [Self.visit("DE", at: nextDay, ip: "192.0.2.1")]), at: nextDay))
        let days = try store.daily(from: day, to: day + 1)
        #expect(days.map(\.visitors) == [9, 1])
        #expect(days.map(\.uniqueVisitors) == [2, 1])
    }

    /// A local day of a zone, with how long it is: the changes of daylight-saving time in Berlin,
    /// +05:45 and +14, where the local date is a day ahead of UTC's for 14 hours of every day.
    static let localDays: [(zone: String, date: String, hours: Double)] = [
        ("Europe/Berlin", "2027-03-28", 23), ("Europe/Berlin", "2027-10-31", 25),
        ("Asia/Kathmandu", "2027-01-15", 24), ("Pacific/Kiritimati", "2027-01-15", 24),
    ]

    /// With the writer's clock injected (never the machine's): one visitor an hour before local
    /// midnight, an hour after it, an hour before the next and an hour after that lands on the local
    /// days in the rollup and the daily read, counts as new at each local midnight, and is in the right
    /// periods; the stats say the zone.
    func visitsLandOnTheirLocalDay(kind: StoreKind, zone: String, date: String, hours: Double) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let calendar = try #require(LocalCalendar(identifier: zone))
        let store = try database.open(storeIP: .hashed, timeZone: calendar)
        let day = try #require(UTCTimestamp.parseDay(date))
        let (start, end) = (calendar.start(ofDay: day), calendar.start(ofDay: day + 1))
        #expect(end.timeIntervalSince(start) == hours * 3600)
        let times = [start - 3600, start + 3600, end - 3600, end + 3600]
        for (index, time) in times.enumerated() {
            // The same visitor each time, and a second one only on the first visit's day.
            var visits = [Self.visit("DE", at: time, ip: "192.0.2.1")]
            if index == 0 { visits.append(Self.visit("FR", at: time, ip: "192.0.2.2")) }
            try store.write(VisitBatch(counting: visits), at: time + 1)
        }
        let (before, after) = (UTCTimestamp.dayText(day - 1), UTCTimestamp.dayText(day + 1))
        #expect(try store.daily(from: day - 1, to: day + 1) == [
            DayStats(date: before, visitors: 2, uniqueVisitors: 2, countries: ["DE": 1, "FR": 1]),
            DayStats(date: date, visitors: 2, uniqueVisitors: 1, countries: ["DE": 2]),
            DayStats(date: after, visitors: 1, uniqueVisitors: 1, countries: ["DE": 1]),
        ])
        var rows: [String] = []
        try store.forEachDailyRow(first: before, last: after) { rows.append($0.date) }
        #expect(rows == [before, before, date, after])

        let during = try store.stats(now: end - 1800)
        #expect(during.timeZone == zone)
        #expect(during.uniqueVisitorsToday == 1)
        #expect(during.periods == VisitorStats.Periods(today: 2, yesterday: 2, last7Days: 4, last30Days: 4))
        let (stats, chart) = try store.statsAndDays(now: end + 7200, days: 3)
        #expect(stats.uniqueVisitorsToday == 1)
        #expect(stats.periods == VisitorStats.Periods(today: 1, yesterday: 2, last7Days: 5, last30Days: 5))
        #expect(chart.map(\.date) == [before, date, after])
        // A week on, those days are the previous 7 days; a month on, the previous 30.
        let week = try store.stats(now: end + 7 * 86_400 - 1800)
        #expect(week.periods == VisitorStats.Periods(today: 0, yesterday: 0, last7Days: 1, previous7Days: 4, last30Days: 5))
        #expect(try store.stats(now: end + 30 * 86_400 - 1800).periods.previous30Days == 4)
        // The keys and hashes of the days before yesterday are gone, by the local calendar.
        #expect(try store.existingDayKeys(now: end + 7200).keys.sorted() == [day, day + 1])
        #expect(Set(try database.column("SELECT date FROM daily_uniques")) == [date, after])
    }

    /// The zone is the database's: recorded by the first store that opens it, taken by a store that
    /// asks for none (`stats`, `export`), and another refused with what to do. A database made before
    /// there was a zone has UTC days and records UTC.
    func theDatabaseRecordsItsZone(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let berlin = try #require(LocalCalendar(identifier: "Europe/Berlin"))
        #expect(try database.open(timeZone: berlin).calendar == berlin)
        #expect(try database.column("SELECT value FROM settings WHERE name = 'time_zone'") == ["Europe/Berlin"])
        #expect(try database.open(timeZone: nil).calendar == berlin)
        #expect(try database.open(timeZone: berlin).calendar == berlin)
        #expect {
            try database.open(timeZone: .utc)
        } throws: { error in
            "\(error)" == "the database's days are in Europe/Berlin, not UTC: start with --time-zone Europe/Berlin, or run "
                + "`visitor-counter rebuild-days --time-zone UTC` first to count its days in UTC"
        }

        let old = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(old) {} }
        // A day that version wrote (this build's writer needs the columns of later versions).
        try old.makeVersion(
            sqlite: SQLiteStore.settingsVersion - 1, postgresql: PostgresStore.settingsVersion - 1,
            then: "INSERT INTO daily_visits (date, visitors, unique_visitors) VALUES ('2027-01-15', 1, 1)")
        #expect(throws: StoreError.self) { try old.open(timeZone: berlin) }
        #expect(try old.column("SELECT value FROM settings WHERE name = 'time_zone'") == ["UTC"])
        #expect(try old.open(timeZone: nil).calendar == .utc)
        #expect(try old.open().stats(now: Self.midnight).periods.today == 1)
    }

    /// Eight stores (workers, or hosts) open a new database at once, half of them in Berlin and half in
    /// Kathmandu: one zone is recorded, the stores of that zone open in it, and the others are refused.
    func storesOpeningANewDatabaseAtOnceAgreeOnItsZone(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let zones = ["Europe/Berlin", "Asia/Kathmandu"].map { LocalCalendar(identifier: $0)! }
        let outcomes = Mutex<[String]>([])
        let (path, uri, state) = (database.sqlitePath, database.cluster?.uri(), database.directory.url.path)
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let outcome: String
            do {
                let store: any CounterStore = switch kind {
                case .sqlite: try SQLiteStore(path: path, timeZone: zones[index % 2])
                case .postgresql: try PostgresStore(uri: uri ?? "", stateDirectory: state, timeZone: zones[index % 2])
                }
                outcome = store.calendar.identifier
            } catch StoreError.timeZoneMismatch(let recorded, _) {
                outcome = "refused for \(recorded)"
            } catch {
                outcome = "\(error)"
            }
            outcomes.withLock { $0.append(outcome) }
        }
        let recorded = try database.column("SELECT value FROM settings WHERE name = 'time_zone'")
        #expect(recorded.count == 1)
        let zone = try #require(recorded.first ?? nil)
        #expect(outcomes.withLock { $0.sorted() } == (Array(repeating: zone, count: 4) + Array(repeating: "refused for \(zone)", count: 4)).sorted())
    }

    /// `rebuild-days`: UTC days counted again in Berlin from the rows kept; the day of a deleted row
    /// keeps its date and count, the rebuilt days have no unique visitors, and the zone is recorded.
    func theDaysAreRebuiltInAnotherZoneFromTheRows(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let gone = UTCTimestamp.parse("2027-01-10T12:00:00Z")!
        let lateEvening = UTCTimestamp.parse("2027-01-14T23:30:00Z")!  // 00:30 on the 15th in Berlin
        let morning = UTCTimestamp.parse("2027-01-15T10:00:00Z")!
        try store.write(VisitBatch(counting: [Self.visit("US", at: gone)]), at: gone)
        var late = Self.visit("DE", at: lateEvening)
        late.path = "/late.html"
        late.referrer = "news.example.com"
        try store.write(VisitBatch(counting: [late]), at: lateEvening)
        try store.write(VisitBatch(counting: [Self.visit("FR", at: morning, ip: "192.0.2.9")]), at: morning)
        #expect(try store.deleteRows(olderThan: UTCTimestamp.parse("2027-01-12T00:00:00Z")!) == 1)
        let day = UTCTimestamp.parseDay("2027-01-15")!
        #expect(try store.daily(from: day - 1, to: day).map(\.visitors) == [1, 1])
        #expect(
            try store.dailyPages(from: day - 1, to: day) == [
                DayPages(date: "2027-01-14", pages: ["/late.html": 1], referrers: ["news.example.com": 1]),
                DayPages(date: "2027-01-15", pages: ["/": 1], referrers: [:]),
            ])

        let outcome = try database.open(timeZone: nil).rebuildDays(in: try #require(LocalCalendar(identifier: "Europe/Berlin")))
        #expect(outcome == RebuiltDays(zone: "Europe/Berlin", firstDate: "2027-01-14", rows: 2))
        #expect(throws: StoreError.self) { try database.open() }
        let berlin = try database.open(timeZone: nil)
        #expect(berlin.calendar.identifier == "Europe/Berlin")
        #expect(try berlin.daily(from: day - 5, to: day) == [
            DayStats(date: "2027-01-10", visitors: 1, uniqueVisitors: 1, countries: ["US": 1]),
            DayStats(date: "2027-01-11", visitors: 0, uniqueVisitors: 0, countries: [:]),
            DayStats(date: "2027-01-12", visitors: 0, uniqueVisitors: 0, countries: [:]),
            DayStats(date: "2027-01-13", visitors: 0, uniqueVisitors: 0, countries: [:]),
            DayStats(date: "2027-01-14", visitors: 0, uniqueVisitors: 0, countries: [:]),
            DayStats(date: "2027-01-15", visitors: 2, uniqueVisitors: 0, countries: ["DE": 1, "FR": 1]),
        ])
        // The pages and referrers of the days move with them.
        #expect(
            try berlin.dailyPages(from: day - 1, to: day) == [
                DayPages(date: "2027-01-14", pages: [:], referrers: [:]),
                DayPages(date: "2027-01-15", pages: ["/": 1, "/late.html": 1], referrers: ["news.example.com": 1]),
            ])
        #expect(try database.integers("SELECT count(*) FROM daily_keys") == [0])
        #expect(try berlin.stats(now: morning).periods == VisitorStats.Periods(today: 2, yesterday: 0, last7Days: 3, last30Days: 3))
    }

    func aJournalSpanAndASpillAreWrittenOnce(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        var batch = SQLiteStoreTests.visits(["US", "GB"])
        batch.journal = JournalSpan(id: "j", start: 0, end: 100)
        #expect(try store.write(batch))
        #expect(try store.write(batch) == false)
        // A batch that does not start where the journal's written part ends is refused.
        batch.journal = JournalSpan(id: "j", start: 150, end: 200)
        #expect(throws: StoreError.self) { try store.write(batch) }
        #expect(try store.journalProgress("j") == 100)
        let spilled = SQLiteStoreTests.visits(["JP"])
        #expect(try store.write(spilled, spillID: "spill-1"))
        #expect(try store.write(spilled, spillID: "spill-1") == false)
        #expect(try store.stats().totalVisitors == 3)
        try store.forgetJournal("j")
        #expect(try store.journalProgress("j") == 0)
    }

    /// Four stores (four workers, or four hosts) write the same 500 visitors at once, each in batches of
    /// 50 in its own order: every visit is counted and every visitor once.
    func concurrentWritersCountEveryVisitAndEveryVisitorOnce(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let stores = try (0..<4).map { _ in try database.open() }
        let now = Date()
        let codes = ["US", "GB", "DE", "FR", "JP", "BR", "XX"]
        let visitors = (0..<500).map { Self.visit(codes[$0 % codes.count], at: now, ip: "192.0.2.\($0 % 250)", userAgent: "agent \($0 / 250)") }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: stores.count) { index in
            let order = index % 2 == 0 ? visitors : visitors.reversed()
            for start in stride(from: 0, to: order.count, by: 50) {
                do {
                    try stores[index].write(VisitBatch(counting: Array(order[start..<start + 50])), at: now)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let stats = try stores[0].stats(now: now)
        #expect(stats.totalVisitors == 2000)
        #expect(stats.uniqueVisitorsToday == 500)
        #expect(stats.countries["US"] == 4 * visitors.filter { $0.countryCode == "US" }.count)
        let (total, rows, countries) = try database.invariant()
        #expect(total == rows && total == countries)
        #expect(try database.integers("SELECT minute_visitors FROM visitor_stats") == [2000])
    }

    static func pageVisit(_ path: String, referrer: String? = nil, at time: Date) -> Visit {
        var visit = Self.visit("US", at: time)
        visit.path = path
        visit.referrer = referrer
        return visit
    }

    /// Pages and referrers are counted all time and per day, and the rows keep them.
    func pagesAndReferrersAreCountedAllTimeAndPerDay(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let today = Self.midnight + 3_600
        let yesterday = today - 86_400
        try store.write(
            VisitBatch(counting: [
                Self.pageVisit("/a.html", referrer: "news.example.com", at: yesterday),
                Self.pageVisit("/a.html", at: today), Self.pageVisit("/", referrer: "news.example.com", at: today),
                Self.pageVisit("/b/", referrer: "search.example.org", at: today),
            ]), at: today)
        try store.write(VisitBatch(counting: [Self.pageVisit("/a.html", at: today)]), at: today)
        let (stats, _) = try store.statsAndDays(now: today, days: 30)
        #expect(stats.pages == ["/a.html": 3, "/": 1, "/b/": 1])
        #expect(stats.referrers == ["news.example.com": 2, "search.example.org": 1])
        #expect(stats.recentPages == stats.pages)
        #expect(stats.recentReferrers == stats.referrers)
        let day = UTCTimestamp.day(today)
        #expect(
            try store.dailyPages(from: day - 2, to: day) == [
                DayPages(date: UTCTimestamp.dayText(day - 2), pages: [:], referrers: [:]),
                DayPages(date: UTCTimestamp.dayText(day - 1), pages: ["/a.html": 1], referrers: ["news.example.com": 1]),
                DayPages(
                    date: UTCTimestamp.dayText(day), pages: ["/a.html": 2, "/": 1, "/b/": 1],
                    referrers: ["news.example.com": 1, "search.example.org": 1]),
            ])
        #expect(try database.column("SELECT path || ' ' || coalesce(referrer, '-') FROM visitors ORDER BY id")
            == ["/a.html news.example.com", "/a.html -", "/ news.example.com", "/b/ search.example.org", "/a.html -"])
        // The recent ones are the last 30 days only.
        let later = try store.statsAndDays(now: today + 30 * 86_400, days: 30).stats
        #expect(later.recentPages == [:])
        #expect(later.pages == stats.pages)
    }

    /// A crawl of more distinct paths than the bounds: a day keeps ``BatchPlan/maxKeysPerDay`` of them
    /// and all time ``BatchPlan/maxKeysAllTime``, the rest counted under `(other)`; no visit is lost.
    func pagesPastTheBoundsCountUnderOther(kind: StoreKind) async throws {
        let database = try await StoreUnderTest(kind)
        defer { withExtendedLifetime(database) {} }
        let store = try database.open()
        let perDay = BatchPlan.maxKeysPerDay + 50
        let days = BatchPlan.maxKeysAllTime / BatchPlan.maxKeysPerDay + 1
        var written = 0
        for day in 0..<days {
            let time = Self.midnight - Double(days - day) * 86_400 + 60
            // In batches of 300, so the bound holds across batches as well as in one.
            for start in stride(from: 0, to: perDay, by: 300) {
                let visits = (start..<min(start + 300, perDay)).map { Self.pageVisit("/day\(day)/\($0)", referrer: "r\($0).example", at: time) }
                try store.write(VisitBatch(counting: visits), at: time)
                written += visits.count
            }
        }
        let perDayCounts = try database.column("SELECT count(*) FROM daily_pages GROUP BY date ORDER BY date").map { Int($0 ?? "") }
        #expect(perDayCounts == Array(repeating: BatchPlan.maxKeysPerDay + 1, count: days))
        #expect(try database.column("SELECT sum(visitors) FROM daily_pages WHERE path = '(other)'") == ["\(50 * days)"])
        #expect(try database.column("SELECT sum(visitors) FROM daily_pages") == ["\(written)"])
        #expect(try database.column("SELECT count(*) FROM daily_referrers GROUP BY date").allSatisfy { $0 == "\(BatchPlan.maxKeysPerDay + 1)" })
        #expect(try database.column("SELECT count(*) FROM visitor_pages") == ["\(BatchPlan.maxKeysAllTime + 1)"])
        #expect(try database.column("SELECT sum(visitors) FROM visitor_pages") == ["\(written)"])
        // The rows keep every path: the bounds are the rollups'.
        #expect(try store.visitorRowCount() == written)
        #expect(try store.stats().pages.count == VisitorStats.topCount)
    }
}

/// ``CounterStoreContract`` on SQLite.
@Suite(.serialized) struct CounterStoreTests {
    @Test func anEmptyDatabaseGetsTheWholeSchema() async throws { try await CounterStoreContract().anEmptyDatabaseGetsTheWholeSchema(kind: .sqlite) }
    @Test func theInvariantHoldsAfterManyBatches() async throws { try await CounterStoreContract().theInvariantHoldsAfterManyBatches(kind: .sqlite) }
    @Test func aBatchWritesItsRowsAndTheTime() async throws { try await CounterStoreContract().aBatchWritesItsRowsAndTheTime(kind: .sqlite) }
    @Test func theRecentWindowsSlideWithTheClock() async throws { try await CounterStoreContract().theRecentWindowsSlideWithTheClock(kind: .sqlite) }
    @Test func minutesOlderThanADayAreDroppedAsBatchesAreWritten() async throws { try await CounterStoreContract().minutesOlderThanADayAreDroppedAsBatchesAreWritten(kind: .sqlite) }
    @Test func botsAreCountedApartAndNotStored() async throws { try await CounterStoreContract().botsAreCountedApartAndNotStored(kind: .sqlite) }
    @Test func theDailyRollupSplitsAtUTCMidnightAndFillsEmptyDays() async throws { try await CounterStoreContract().theDailyRollupSplitsAtUTCMidnightAndFillsEmptyDays(kind: .sqlite) }
    @Test func keysAreRotatedDailyAndDeletedAfterTwoDays() async throws { try await CounterStoreContract().keysAreRotatedDailyAndDeletedAfterTwoDays(kind: .sqlite) }
    @Test func lateHashesOfOldDaysAreCountedAndNotKept() async throws { try await CounterStoreContract().lateHashesOfOldDaysAreCountedAndNotKept(kind: .sqlite) }
    @Test func aSealedVisitWithoutAHashIsNoUniqueVisitor() async throws { try await CounterStoreContract().aSealedVisitWithoutAHashIsNoUniqueVisitor(kind: .sqlite) }
    @Test func returningVisitorsCountOnceADayAndAnUnwrittenBatchTeachesNothing() async throws { try await CounterStoreContract().returningVisitorsCountOnceADayAndAnUnwrittenBatchTeachesNothing(kind: .sqlite) }
    @Test func aJournalSpanAndASpillAreWrittenOnce() async throws { try await CounterStoreContract().aJournalSpanAndASpillAreWrittenOnce(kind: .sqlite) }
    @Test func concurrentWritersCountEveryVisitAndEveryVisitorOnce() async throws { try await CounterStoreContract().concurrentWritersCountEveryVisitAndEveryVisitorOnce(kind: .sqlite) }
    @Test func theOwnersRequestsAreCountedInIgnoredOnly() async throws { try await CounterStoreContract().theOwnersRequestsAreCountedInIgnoredOnly(kind: .sqlite) }
    @Test func aDatabaseBeforeIgnoredIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforeIgnoredIsMigrated(kind: .sqlite) }
    @Test func aDatabaseBeforeMinuteVisitorsIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforeMinuteVisitorsIsMigrated(kind: .sqlite) }
    @Test(arguments: CounterStoreContract.localDays) func visitsLandOnTheirLocalDay(zone: String, date: String, hours: Double) async throws {
        try await CounterStoreContract().visitsLandOnTheirLocalDay(kind: .sqlite, zone: zone, date: date, hours: hours)
    }
    @Test func theDatabaseRecordsItsZone() async throws { try await CounterStoreContract().theDatabaseRecordsItsZone(kind: .sqlite) }
    @Test func storesOpeningANewDatabaseAtOnceAgreeOnItsZone() async throws { try await CounterStoreContract().storesOpeningANewDatabaseAtOnceAgreeOnItsZone(kind: .sqlite) }
    @Test func theDaysAreRebuiltInAnotherZoneFromTheRows() async throws { try await CounterStoreContract().theDaysAreRebuiltInAnotherZoneFromTheRows(kind: .sqlite) }
    @Test func pagesAndReferrersAreCountedAllTimeAndPerDay() async throws { try await CounterStoreContract().pagesAndReferrersAreCountedAllTimeAndPerDay(kind: .sqlite) }
    @Test func pagesPastTheBoundsCountUnderOther() async throws { try await CounterStoreContract().pagesPastTheBoundsCountUnderOther(kind: .sqlite) }
    @Test func aDatabaseBeforePagesIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforePagesIsMigrated(kind: .sqlite) }
}

/// ``CounterStoreContract`` on PostgreSQL: each test starts a cluster of its own.
@Suite(.serialized, .tags(.postgres)) struct PostgresCounterStoreTests {
    @Test func anEmptyDatabaseGetsTheWholeSchema() async throws { try await CounterStoreContract().anEmptyDatabaseGetsTheWholeSchema(kind: .postgresql) }
    @Test func theInvariantHoldsAfterManyBatches() async throws { try await CounterStoreContract().theInvariantHoldsAfterManyBatches(kind: .postgresql) }
    @Test func aBatchWritesItsRowsAndTheTime() async throws { try await CounterStoreContract().aBatchWritesItsRowsAndTheTime(kind: .postgresql) }
    @Test func theRecentWindowsSlideWithTheClock() async throws { try await CounterStoreContract().theRecentWindowsSlideWithTheClock(kind: .postgresql) }
    @Test func minutesOlderThanADayAreDroppedAsBatchesAreWritten() async throws { try await CounterStoreContract().minutesOlderThanADayAreDroppedAsBatchesAreWritten(kind: .postgresql) }
    @Test func botsAreCountedApartAndNotStored() async throws { try await CounterStoreContract().botsAreCountedApartAndNotStored(kind: .postgresql) }
    @Test func theDailyRollupSplitsAtUTCMidnightAndFillsEmptyDays() async throws { try await CounterStoreContract().theDailyRollupSplitsAtUTCMidnightAndFillsEmptyDays(kind: .postgresql) }
    @Test func keysAreRotatedDailyAndDeletedAfterTwoDays() async throws { try await CounterStoreContract().keysAreRotatedDailyAndDeletedAfterTwoDays(kind: .postgresql) }
    @Test func lateHashesOfOldDaysAreCountedAndNotKept() async throws { try await CounterStoreContract().lateHashesOfOldDaysAreCountedAndNotKept(kind: .postgresql) }
    @Test func aSealedVisitWithoutAHashIsNoUniqueVisitor() async throws { try await CounterStoreContract().aSealedVisitWithoutAHashIsNoUniqueVisitor(kind: .postgresql) }
    @Test func returningVisitorsCountOnceADayAndAnUnwrittenBatchTeachesNothing() async throws { try await CounterStoreContract().returningVisitorsCountOnceADayAndAnUnwrittenBatchTeachesNothing(kind: .postgresql) }
    @Test func aJournalSpanAndASpillAreWrittenOnce() async throws { try await CounterStoreContract().aJournalSpanAndASpillAreWrittenOnce(kind: .postgresql) }
    @Test func concurrentWritersCountEveryVisitAndEveryVisitorOnce() async throws { try await CounterStoreContract().concurrentWritersCountEveryVisitAndEveryVisitorOnce(kind: .postgresql) }
    @Test func theOwnersRequestsAreCountedInIgnoredOnly() async throws { try await CounterStoreContract().theOwnersRequestsAreCountedInIgnoredOnly(kind: .postgresql) }
    @Test func aDatabaseBeforeIgnoredIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforeIgnoredIsMigrated(kind: .postgresql) }
    @Test func aDatabaseBeforeMinuteVisitorsIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforeMinuteVisitorsIsMigrated(kind: .postgresql) }
    @Test(arguments: CounterStoreContract.localDays) func visitsLandOnTheirLocalDay(zone: String, date: String, hours: Double) async throws {
        try await CounterStoreContract().visitsLandOnTheirLocalDay(kind: .postgresql, zone: zone, date: date, hours: hours)
    }
    @Test func theDatabaseRecordsItsZone() async throws { try await CounterStoreContract().theDatabaseRecordsItsZone(kind: .postgresql) }
    @Test func storesOpeningANewDatabaseAtOnceAgreeOnItsZone() async throws { try await CounterStoreContract().storesOpeningANewDatabaseAtOnceAgreeOnItsZone(kind: .postgresql) }
    @Test func theDaysAreRebuiltInAnotherZoneFromTheRows() async throws { try await CounterStoreContract().theDaysAreRebuiltInAnotherZoneFromTheRows(kind: .postgresql) }
    @Test func pagesAndReferrersAreCountedAllTimeAndPerDay() async throws { try await CounterStoreContract().pagesAndReferrersAreCountedAllTimeAndPerDay(kind: .postgresql) }
    @Test func pagesPastTheBoundsCountUnderOther() async throws { try await CounterStoreContract().pagesPastTheBoundsCountUnderOther(kind: .postgresql) }
    @Test func aDatabaseBeforePagesIsMigrated() async throws { try await CounterStoreContract().aDatabaseBeforePagesIsMigrated(kind: .postgresql) }
}
