import Foundation
import Logging
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

struct SpillFileTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    @Test func aReplayWritesEveryLineAndRemovesTheFile() throws {
        let path = directory.path("replay.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 0)
        var withoutRows = SQLiteStoreTests.visits(["US", "GB"])
        withoutRows.countWithoutRow(Visit(trustedIP: nil, userAgent: "", country: "France", countryCode: "FR", time: Date()))
        try spill.append(withoutRows, worker: 0)
        try spill.append(SQLiteStoreTests.visits(["US"]), worker: 0)

        let replay = try #require(try spill.replay(into: store, sorting: .standard))
        #expect(replay == SpillFile.Replay(batches: 2, visits: 4))
        #expect(!FileManager.default.fileExists(atPath: spill.path))
        #expect(try store.stats().countries == ["US": 2, "GB": 1, "FR": 1])
        #expect(try store.stats().visitsWithoutRows == 1)
        // Spill files come from versions that counted the index page only.
        #expect(try store.stats().pages == ["/": 4])
        try SQLiteStoreTests.expectInvariant(store)
        #expect(try spill.replay(into: store, sorting: .standard) == nil)
    }

    @Test func aReplayCutShortBeforeTheFileWasRemovedCountsNothingTwice() throws {
        let path = directory.path("twice.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 1)
        try spill.append(SQLiteStoreTests.visits(["JP", "JP"]), worker: 1)
        let copy = try Data(contentsOf: URL(fileURLWithPath: spill.path))
        _ = try spill.replay(into: store, sorting: .standard)
        // As if the process had died after the commit and before the unlink.
        try copy.write(to: URL(fileURLWithPath: spill.path))
        // As the counter makes them: only its own user may read them.
        chmod(spill.path, 0o600)
        let again = try #require(try spill.replay(into: store, sorting: .standard))
        #expect(again == SpillFile.Replay(batches: 0, visits: 0, alreadyReplayed: 1))
        #expect(try store.stats().totalVisitors == 2)
    }

    @Test func aLineCutShortByACrashIsSetAsideAndTheRestReplayed() throws {
        let path = directory.path("torn.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 0)
        try spill.append(SQLiteStoreTests.visits(["DE"]), worker: 0)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: spill.path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"id":"cut-sh"#.utf8))
        try handle.close()
        // The next spill starts on a line of its own rather than gluing itself to the cut one.
        try spill.append(SQLiteStoreTests.visits(["FR", "FR"]), worker: 0)
        let replay = try #require(try spill.replay(into: store, sorting: .standard))
        #expect(replay == SpillFile.Replay(batches: 2, visits: 3, damagedLines: 1))
        #expect(try String(contentsOfFile: spill.path + ".rejected", encoding: .utf8) == "{\"id\":\"cut-sh\n")
        #expect(try store.stats().countries == ["DE": 1, "FR": 2])
    }

    @Test func aSpillFileThisServiceDidNotMakeIsNotReplayed() throws {
        let path = directory.path("foreign.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 0)
        try spill.append(SQLiteStoreTests.visits(["US"]), worker: 0)
        chmod(spill.path, 0o666)
        #expect(throws: VisitJournal.OpenError.self) { try spill.replay(into: store, sorting: .standard) }
        // A link to another file is not followed, whoever owns what it points to.
        let target = directory.path("elsewhere.jsonl")
        try FileManager.default.moveItem(atPath: spill.path, toPath: target)
        chmod(target, 0o600)
        try FileManager.default.createSymbolicLink(atPath: spill.path, withDestinationPath: target)
        #expect(throws: VisitJournal.OpenError.self) { try spill.replay(into: store, sorting: .standard) }
        #expect(FileManager.default.fileExists(atPath: target))
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func aLineFromAnEarlierBuildStillReplays() throws {
        let path = directory.path("earlier.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 0)
        // Written before the recent windows and the daily rollup: counts by country code alone.
        let line = #"{"counts_without_rows":{"US":2},"id":"earlier-1","spilled_at":"2026-11-20T10:00:00.000Z","visits":[],"worker":0}"#
        try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: spill.path))
        chmod(spill.path, 0o600)
        #expect(try spill.replay(into: store, sorting: .standard) == SpillFile.Replay(batches: 1, visits: 2))
        #expect(try store.stats().countries == ["US": 2])
        #expect(try store.daily(from: UTCTimestamp.parseDay("2026-11-20")!, to: UTCTimestamp.parseDay("2026-11-20")!).first?.visitors == 2)
    }

    /// Keys that name one day and country twice, as no build wrote them but a damaged or edited file
    /// may hold: added up, not a trap.
    @Test func keysThatNameOneDayTwiceAreAddedUp() throws {
        let path = directory.path("twice.sqlite")
        let store = try SQLiteStore(path: path)
        let spill = SpillFile(database: path, worker: 0)
        let day = UTCTimestamp.parseDay("2026-11-20")!
        let line = #"{"counts_without_rows":{"US":2,"\#(day) US":3},"minutes_without_rows":{"01":1,"1":1},"id":"twice-1","spilled_at":"2026-11-20T10:00:00.000Z","visits":[],"worker":0}"#
        try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: spill.path))
        chmod(spill.path, 0o600)
        #expect(try spill.replay(into: store, sorting: .standard) == SpillFile.Replay(batches: 1, visits: 5))
        #expect(try store.stats().countries == ["US": 5])
    }

    @Test func botsCountedWithoutRowsAddToBots() throws {
        let store = try SQLiteStore(path: directory.path("rowless-bots.sqlite"))
        var batch = SQLiteStoreTests.visits(["US"])
        batch.botsWithoutRows = 3
        let spill = SpillFile(database: store.path, worker: 0)
        try spill.append(batch, worker: 0)
        _ = try spill.replay(into: store, sorting: .standard)
        #expect(try store.stats().totalVisitors == 1)
        #expect(try store.stats().bots == 3)
    }

    /// Workers of earlier versions spilled bots' requests as rows and left them to the store: the
    /// replay sorts them as the buffer now does, by `--count-bots`, with the check of this version
    /// (the one before took the health check for a person).
    @Test(arguments: [false, true]) func spilledBotRowsAreSortedAtTheReplay(countsBots: Bool) throws {
        let store = try SQLiteStore(path: directory.path("bot-rows-\(countsBots).sqlite"))
        let now = Date()
        let spill = SpillFile(database: store.path, worker: 0)
        try spill.append(
            VisitBatch(counting: [
                Visit(trustedIP: nil, userAgent: "curl/8.5.0", country: "US", countryCode: "US", time: now),
                Visit(trustedIP: nil, userAgent: "ELB-HealthChecker/2.0", country: "US", countryCode: "US", time: now),
                Visit(trustedIP: nil, userAgent: "Mozilla/5.0 (X11; Linux x86_64)", country: "US", countryCode: "US", time: now),
            ]), worker: 0)
        _ = try spill.replay(into: store, sorting: VisitSorting(countsBots: countsBots))
        #expect(try store.stats().totalVisitors == (countsBots ? 3 : 1))
        #expect(try store.stats().bots == (countsBots ? 0 : 2))
        #expect(try store.visitorRowCount() == (countsBots ? 3 : 1))
    }
}

struct AuditLogTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    func entry(_ number: Int) -> AuditLog.Entry {
        AuditLog.Entry(event: .writeFailed, worker: 0, visits: number, error: "disk full", action: "kept")
    }

    @Test func theLogIsRotatedAtItsBound() throws {
        let audit = AuditLog(path: directory.path("audit.jsonl"), maxBytes: 2000, logger: quietLogger)
        for number in 0..<40 { audit.record(entry(number)) }
        let current = try FileManager.default.attributesOfItem(atPath: audit.path)[.size] as? Int ?? 0
        let rotated = try FileManager.default.attributesOfItem(atPath: audit.rotatedPath)[.size] as? Int ?? 0
        #expect(current <= 2000)
        #expect(rotated <= 2000)
        let kept = try AuditLog.read(path: audit.path).map(\.visits)
        #expect(kept == Array((40 - kept.count)..<40))
        #expect(kept.count > 10)
    }

    @Test func entriesThatCannotBeWrittenAreKeptAndWrittenLater() throws {
        let folder = directory.path("later")
        let audit = AuditLog(path: folder + "/audit.jsonl", logger: quietLogger)
        audit.record(entry(1))
        audit.record(entry(2))
        #expect(!FileManager.default.fileExists(atPath: audit.path))
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        audit.flushPending()
        #expect(try AuditLog.read(path: audit.path).map(\.visits) == [1, 2])
    }
}
