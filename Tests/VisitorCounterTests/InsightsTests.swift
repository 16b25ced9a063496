import Foundation
import GRDB
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The daily rollup, unique visitors and their keys, `--store-ip`, retention and export.
struct InsightsTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    /// 2027-01-15T00:00:00Z, a midnight.
    let midnight = Date(timeIntervalSince1970: 1_800_000_000 - 28_800)
    var day: Int { UTCTimestamp.day(midnight) }

    func visit(_ code: String, at time: Date, ip: String = "203.0.113.77", userAgent: String = "Mozilla/5.0 (X11; Linux x86_64) test") -> Visit {
        Visit(trustedIP: ip, userAgent: userAgent, country: code, countryCode: code, time: time)
    }

    @Test func uniqueVisitorsAreCountedOnceAcrossTwoWorkerProcesses() async throws {
        let database = directory.path("uniques.sqlite")
        _ = try SQLiteStore(path: database)
        // Both processes see the same 256 visitors (192.0.2.0-255, one user agent) four times over.
        let children = try (0..<2).map { index in
            try ChildProcess(
                try visitorCounterExecutable(),
                ["simulate", "--database", database, "--visits", "1024", "--batch-size", "64", "--threads", "1"],
                in: directory, name: "simulate-\(index)")
        }
        for child in children { #expect(await child.exitStatus() == 0, "\(child.stderr)") }
        let stats = try SQLiteStore(path: database).stats()
        #expect(stats.totalVisitors == 2048)
        #expect(stats.uniqueVisitorsToday == 256)
    }

    @Test(arguments: [
        (StoreIPMode.full, "203.0.113.77", "203.0.113.77"),
        (.truncated, "203.0.113.77", "203.0.113.0"),
        (.truncated, "2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        (.none, "203.0.113.77", nil),
    ] as [(StoreIPMode, String, String?)])
    func storeIPModes(mode: StoreIPMode, ip: String, stored: String?) throws {
        let store = try SQLiteStore(path: directory.path("ip-\(mode).sqlite"), storeIP: mode)
        try store.write(VisitBatch(counting: [visit("US", at: Date(), ip: ip)]))
        #expect(try store.read { db in try String.fetchOne(db, sql: "SELECT ip FROM visitors") } == stored)
        #expect(try store.stats().countries == ["US": 1])
    }

    @Test func hashedAddressesMatchWithinADayAndNotAcrossDays() throws {
        let store = try SQLiteStore(path: directory.path("ip-hashed.sqlite"), storeIP: .hashed)
        let first = midnight + 3600
        try store.write(VisitBatch(counting: [visit("US", at: first), visit("US", at: first + 60)]), at: first + 61)
        let next = first + 86_400
        try store.write(VisitBatch(counting: [visit("US", at: next)]), at: next + 1)
        let stored = try store.read { db in try String.fetchAll(db, sql: "SELECT ip FROM visitors ORDER BY id") }
        #expect(stored.count == 3)
        #expect(stored.allSatisfy { $0.count == 16 && $0.allSatisfy(\.isHexDigit) })
        #expect(stored[0] == stored[1])
        #expect(stored[1] != stored[2])
        #expect(!stored.contains("203.0.113.77"))
    }

    @Test func retentionDeletesOnlyOldRowsAndKeepsTheTotals() throws {
        let store = try SQLiteStore(path: directory.path("retention.sqlite"))
        let now = Date()
        let old = (0..<2500).map { visit("US", at: now - 10 * 86_400 - Double($0)) }
        let recent = (0..<10).map { visit("GB", at: now - 86_400 - Double($0)) }
        try store.write(VisitBatch(counting: old + recent))
        let before = try store.stats()
        let dailyBefore = try store.daily(from: UTCTimestamp.day(now) - 11, to: UTCTimestamp.day(now))
        let log = recordingLogger()
        #expect(Retention(store: store, days: 7, logger: log.logger).run(now: now, pause: 0) == 2500)
        #expect(
            log.lines.entries.map { [$0.message.description, "\($0.level)", $0.metadata["retention.rows"]?.description ?? ""] }
                == [["retention: old rows deleted", "info", "2500"]])
        #expect(try store.visitorRowCount() == 10)
        #expect(try store.stats().totalVisitors == before.totalVisitors)
        #expect(try store.stats().countries == before.countries)
        #expect(try store.daily(from: UTCTimestamp.day(now) - 11, to: UTCTimestamp.day(now)) == dailyBefore)
        try SQLiteStoreTests.expectInvariant(store)
    }

    /// `export` streams: its memory does not grow with the rows it writes. Exporting 80,000 rows (about
    /// 8 MiB of CSV) may take at most half of their extra text more than exporting 20,000, where an export
    /// that held the rows or the text would take all of it more (seen: the same peak within 1 MiB, as for
    /// 1,000,000 rows, SQLite's cache and one page of rows).
    @Test func exportStreamsItsRowsInBoundedMemory() async throws {
        let database = directory.path("export.sqlite")
        _ = try SQLiteStore(path: database)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let queue = try DatabaseQueue(path: database, configuration: configuration)
        defer { try? queue.close() }
        /// Adds the rows numbered `first...last`.
        func insertRows(_ first: Int, _ last: Int) async throws {
            try await queue.write { db in
                try db.execute(
                    sql: """
                        WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                        INSERT INTO visitors (ip, user_agent, country, country_code, timestamp)
                        SELECT '198.51.100.' || (i % 256), 'Mozilla/5.0 (export test, "quoted", row ' || i || ')',
                            'United States', 'US', '2026-11-' || printf('%02d', 1 + i % 20) || 'T12:00:00.000Z' FROM n
                        """,
                    arguments: [first, last])
            }
        }
        try await insertRows(1, 20_000)
        let small = try await exportPeakMemory(database, to: directory.path("small.csv"))
        try await insertRows(20_001, 80_000)
        let output = directory.path("export.csv")
        let large = try await exportPeakMemory(database, to: output)

        let sizes = try ["small.csv", "export.csv"].map {
            (try FileManager.default.attributesOfItem(atPath: directory.path($0))[.size] as? Int) ?? 0
        }
        var lines = 0
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: output))
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            lines += chunk.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        }
        print("export: peak RSS \(small >> 20) MiB for 20,000 rows (\(sizes[0] >> 20) MiB of CSV), \(large >> 20) MiB for 80,000 (\(sizes[1] >> 20) MiB)")
        #expect(lines == 80_001)
        #expect(sizes[1] - sizes[0] > 6 << 20)
        // Against the same program's smaller export, not a fixed figure: what a process takes before its
        // first row (runtime, libraries, a malloc arena per thread) differs from one machine to another.
        // An export that held its rows would take more than their CSV (each row's strings, and the
        // text); one that streams takes the same, give or take a few MiB of allocator and page cache a
        // loaded machine has been seen to add (4.3 MiB, where alone it adds none).
        #expect(large - small < sizes[1] - sizes[0], "60,000 more rows took \((large - small) >> 20) MiB more")
    }

    /// The peak resident memory of `visitor-counter export --format csv` on `database`, as the kernel
    /// counted it for that process (`wait4`'s `ru_maxrss`). Sampling `/proc` instead missed the peak of a
    /// short export on a loaded machine, and the test then saw the larger export grow by a whole process.
    func exportPeakMemory(_ database: String, to output: String) async throws -> Int {
        try createEmptyFile(output)
        let executable = try visitorCounterExecutable().path
        let outputDescriptor = open(output, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard outputDescriptor >= 0 else { throw TestFailure("cannot open \(output): errno \(errno)") }
        defer { close(outputDescriptor) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outputDescriptor, 1)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let arguments: [String] = [executable, "export", "--database", database, "--format", "csv"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw TestFailure("posix_spawn \(executable): \(spawned)") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw TestFailure("wait4: errno \(errno)") }
        }
        #expect(status == 0, "export exited with status \(status)")
        return usage.ru_maxrss * 1024
    }

    @Test func exportWritesValidJSONAndCSV() throws {
        let store = try SQLiteStore(path: directory.path("small.sqlite"))
        try store.write(VisitBatch(counting: [
            visit("US", at: midnight + 5, userAgent: "agent, with \"quotes\""), visit("GB", at: midnight + 86_400 + 5),
        ]), at: midnight + 86_400 + 10)
        func export(_ format: Exporter.Format, daily: Bool = false, from: Int? = nil, to: Int? = nil) throws -> String {
            let path = directory.path("out-\(UUID().uuidString)")
            try createEmptyFile(path)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            let exporter = Exporter(store: store, format: format, from: from, to: to)
            if daily { try exporter.exportDaily(to: handle) } else { try exporter.exportVisits(to: handle) }
            try handle.close()
            return try String(contentsOfFile: path, encoding: .utf8)
        }
        let csv = try export(.csv)
        #expect(csv.split(separator: "\n").count == 3)
        // Page by page, one row at a time, gives the same.
        let paged = directory.path("paged.csv")
        try createEmptyFile(paged)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: paged))
        try Exporter(store: store, format: .csv, from: nil, to: nil).exportVisits(to: handle, pageSize: 1)
        try handle.close()
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == csv)
        #expect(csv.contains(#",US,US,"agent, with ""quotes""""#))
        let json = try JSONSerialization.jsonObject(with: Data(try export(.json).utf8)) as? [[String: Any]]
        #expect(json?.map { $0["country_code"] as? String } == ["US", "GB"])
        let onlySecondDay = try JSONSerialization.jsonObject(with: Data(try export(.json, from: day + 1, to: day + 1).utf8)) as? [[String: Any]]
        #expect(onlySecondDay?.count == 1)
        let daily = try JSONSerialization.jsonObject(with: Data(try export(.json, daily: true).utf8)) as? [String: Any]
        let days = daily?["days"] as? [[String: Any]]
        #expect(days?.map { $0["date"] as? String } == ["2027-01-15", "2027-01-16"])
        #expect(days?.first?["countries"] as? [String: Int] == ["US": 1])
        #expect(try export(.csv, daily: true).hasPrefix("date,visitors,unique_visitors,country_code,country_visitors\n2027-01-15,1,1,US,1\n"))
    }

    @Test(arguments: [
        ("=HYPERLINK(\"http://x\")", #""'=HYPERLINK(""http://x"")""#),
        ("+1+2", #""'+1+2""#),
        ("-2+3", #""'-2+3""#),
        ("@SUM(A1)", #""'@SUM(A1)""#),
        ("\tcmd", "\"'\tcmd\""),
        ("\rcmd", "\"'\rcmd\""),
        ("Mozilla/5.0 (X11; Linux) a=b", "Mozilla/5.0 (X11; Linux) a=b"),
        ("curl/8.0, with comma", #""curl/8.0, with comma""#),
    ])
    func csvCellsThatASpreadsheetWouldRunAreNeutralised(value: String, field: String) {
        #expect(Exporter.csvField(value) == field)
    }

    @Test func anExportedFormulaIsNeutralisedInTheFile() throws {
        let store = try SQLiteStore(path: directory.path("formula.sqlite"))
        try store.write(VisitBatch(counting: [visit("US", at: midnight + 5, userAgent: "=cmd|' /C calc'!A0")]), at: midnight + 10)
        let path = directory.path("formula.csv")
        try createEmptyFile(path)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try Exporter(store: store, format: .csv, from: nil, to: nil).exportVisits(to: handle)
        try handle.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "timestamp,ip,country_code,country,user_agent,path,referrer")
        #expect(lines.last?.hasSuffix(#",US,US,"'=cmd|' /C calc'!A0",/,"#) == true, "\(lines)")
    }

    @Test func sipHashMatchesTheReferenceVectors() {
        let key = Array(UInt8(0)..<16)
        #expect(SipHash.hash([], key: key) == 0x726f_db47_dd0e_0e31)
        #expect(SipHash.hash(Array(UInt8(0)..<15), key: key) == 0xa129_ca61_49be_45e5)
        #expect(SipHash.hash(Array(UInt8(0)..<8), key: key) == 0x93f5_f579_9a93_2462)
    }

    @Test func daysParseStrictly() {
        #expect(UTCTimestamp.parseDay("2026-11-24") == UTCTimestamp.day(UTCTimestamp.parse("2026-11-24T00:00:00Z")!))
        for bad in ["2026-02-30", "2026-13-01", "26-11-24", "2026-11-24T00", "", "2026/11/24"] {
            #expect(UTCTimestamp.parseDay(bad) == nil, "\(bad)")
        }
    }
}
