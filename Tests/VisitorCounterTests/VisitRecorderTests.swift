import Foundation
import GRDB
import Logging
import Testing

@testable import VisitorCounter

struct VisitRecorderTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    static let fastRetry = RetryPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(100))

    static func visit(_ code: String, thread: Int = 0) -> Visit {
        Visit(ip: "192.0.2.\(thread)", userAgent: Array("Mozilla/5.0 (X11; Linux x86_64) test".utf8), countryCode: code, countryName: nil, time: Date())
    }

    @Test func stopWritesEverythingBufferedBeforeItReturns() throws {
        let store = try SQLiteStore(path: directory.path("stop.sqlite"))
        // Neither the size nor the interval would ever flush: only stop() can.
        let recorder = VisitRecorder(
            store: store, batchSize: 1_000_000, flushInterval: .seconds(3600), logger: quietLogger)
        recorder.start()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for _ in 0..<500 { recorder.record(Self.visit(thread % 2 == 0 ? "US" : "GB", thread: thread)) }
        }
        #expect(try store.stats().totalVisitors == 0)
        recorder.stop()
        #expect(try store.stats().countries == ["US": 2000, "GB": 2000])
        #expect(try store.visitorRowCount() == 4000)
        #expect(recorder.statistics.visitsWritten == 4000)
        #expect(recorder.pendingVisits == 0)
    }

    @Test func fullBatchesAreWrittenWithoutAStop() async throws {
        let store = try SQLiteStore(path: directory.path("size.sqlite"))
        let recorder = VisitRecorder(
            store: store, batchSize: 10, flushInterval: .seconds(3600), logger: quietLogger)
        recorder.start()
        defer { recorder.stop() }
        for _ in 0..<25 { recorder.record(Self.visit("DE")) }
        try await waitUntil("store.stats().totalVisitors == 20", seconds: 10) { try store.stats().totalVisitors == 20 }
        #expect(recorder.pendingVisits == 5)
    }

    @Test func failedWritesAreRetriedAndEveryVisitLandsOnce() async throws {
        let path = directory.path("retry.sqlite")
        let store = try SQLiteStore(path: path, busyTimeout: 0.05)
        let log = recordingLogger()
        let audit = AuditLog(database: path, logger: log.logger)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 50, flushInterval: .milliseconds(50), retry: Self.fastRetry),
            audit: audit, logger: quietLogger)
        recorder.start()
        let lock = try SQLiteWriteLock(path)
        for index in 0..<500 { recorder.record(Self.visit(index % 3 == 0 ? "US" : "JP")) }
        try await waitUntil("recorder.statistics.failedWrites >= 3", seconds: 10) { recorder.statistics.failedWrites >= 3 }
        #expect(try store.stats().totalVisitors == 0)
        #expect(recorder.statistics.consecutiveFailures >= 3)
        try lock.release()
        try await waitUntil("store.stats().totalVisitors == 500", seconds: 10) { try store.stats().totalVisitors == 500 }
        recorder.stop()
        #expect(try store.stats().countries == ["US": 167, "JP": 333])
        try SQLiteStoreTests.expectInvariant(store)
        #expect(recorder.statistics.consecutiveFailures == 0)
        let events = try AuditLog.read(path: audit.path).map(\.event)
        #expect(events.contains("write_failed"))
        #expect(events.last == "write_recovered")
        // The operator sees both in the process log (journald): the failure as a warning with SQLite's
        // error, the recovery as a notice that says after how many attempts.
        let failed = log.lines.entries.filter { $0.message.description == "write_failed" }
        #expect(!failed.isEmpty && failed.allSatisfy { $0.level == .warning })
        #expect(failed.first?.metadata["audit.error"]?.description.contains("locked") == true, "\(failed)")
        let recovered = try #require(log.lines.entries.last { $0.message.description == "write_recovered" })
        #expect(recovered.level == .notice)
        #expect(recovered.metadata["audit.action"]?.description.hasPrefix("written after ") == true, "\(recovered)")
    }

    @Test func atTheBoundVisitsAreCountedWithoutRows() async throws {
        let path = directory.path("bound.sqlite")
        let store = try SQLiteStore(path: path, busyTimeout: 0.05)
        let audit = AuditLog(database: path, logger: quietLogger)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 100, flushInterval: .milliseconds(50), bufferLimit: 300, retry: Self.fastRetry),
            audit: audit, logger: quietLogger)
        recorder.start()
        let lock = try SQLiteWriteLock(path)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<2500 { recorder.record(Self.visit(index % 2 == 0 ? "US" : "GB", thread: thread)) }
        }
        #expect(recorder.statistics.bufferedRows == 300)
        #expect(recorder.statistics.bufferedVisits == 10_000)
        #expect(recorder.statistics.visitsWithoutRows == 9700)
        try lock.release()
        try await waitUntil("store.stats().totalVisitors == 10_000", seconds: 10) { try store.stats().totalVisitors == 10_000 }
        recorder.stop()
        let stats = try store.stats()
        #expect(stats.countries == ["US": 5000, "GB": 5000])
        #expect(stats.visitsWithoutRows == 9700)
        #expect(try store.visitorRowCount() == 300)
        try SQLiteStoreTests.expectInvariant(store)
        #expect(try AuditLog.read(path: audit.path).map(\.event).contains("rows_dropped"))
    }

    @Test func aStopWhileTheDatabaseIsLockedLeavesTheVisitsInTheJournalForTheNextStart() async throws {
        let path = directory.path("journal.sqlite")
        let store = try SQLiteStore(path: path, busyTimeout: 0.05)
        let configuration = VisitRecorder.Configuration(
            batchSize: 1000, flushInterval: .seconds(3600), retry: Self.fastRetry, worker: 3)
        var first: VisitRecorder? = VisitRecorder(
            store: store, configuration: configuration,
            journal: try VisitJournal.create(database: path, worker: 3, capacity: 1 << 20), logger: quietLogger)
        first?.start()
        let lock = try SQLiteWriteLock(path)
        for index in 0..<700 { first?.record(Self.visit(index < 200 ? "BR" : "DE")) }
        first?.stop()
        #expect(first?.statistics.spilledVisits == 700)
        let journals = try VisitJournal.all(database: path)
        #expect(journals.count == 1)
        try lock.release()
        #expect(try store.stats().totalVisitors == 0)
        first = nil

        let second = VisitRecorder(
            store: store, configuration: configuration,
            journal: try VisitJournal.create(database: path, worker: 3, capacity: 1 << 20), logger: quietLogger)
        second.start()
        try await waitUntil("store.stats().totalVisitors == 700", seconds: 10) { try store.stats().totalVisitors == 700 }
        try await waitUntil("VisitJournal.all(database: path).count == 1", seconds: 10) { try VisitJournal.all(database: path).count == 1 }
        second.stop()
        #expect(second.statistics.replayedVisits == 700)
        #expect(try store.stats().countries == ["BR": 200, "DE": 500])
        #expect(try store.visitorRowCount() == 700)
        // Everything written: the second journal went at the stop too.
        #expect(try VisitJournal.all(database: path).isEmpty)
    }

    @Test func theJournalsRingGoesRoundManyTimesAsBatchesAreWritten() async throws {
        let path = directory.path("wrap.sqlite")
        let store = try SQLiteStore(path: path)
        // About 60 of these visits fill a 4 KiB ring: 1200 of them go round it about 20 times, which
        // works only if every written batch makes room again.
        let journal = try VisitJournal.create(database: path, worker: 0, capacity: 4096)
        let recorder = VisitRecorder(
            store: store, configuration: .init(batchSize: 10, flushInterval: .milliseconds(10), retry: Self.fastRetry),
            journal: journal, logger: quietLogger)
        recorder.start()
        for round in 0..<60 {
            for index in 0..<20 { recorder.record(Self.visit(index % 2 == 0 ? "AT" : "BE", thread: round)) }
            try await waitUntil("recorder.pendingVisits == 0", seconds: 10) { recorder.pendingVisits == 0 }
        }
        #expect(journal.end > 4096 * 10)
        #expect(recorder.statistics.visitsNotJournaled == 0)
        // Every visit written once, and the database knows the journal is written to its end: a replay
        // after a crash now would find nothing to write.
        #expect(try store.journalProgress(journal.id) == journal.end)
        #expect(try store.stats().countries == ["AT": 600, "BE": 600])
        #expect(try store.visitorRowCount() == 1200)
        recorder.stop()
        #expect(try store.stats().totalVisitors == 1200)
    }

    /// A database restored from a backup under a running worker, as an asynchronous standby promoted
    /// without the last commits: `visitors.sqlite` copied back from a snapshot taken `lost` visits ago.
    func restoreWorker(capacity: Int, lost: Int) async throws -> (store: SQLiteStore, recorder: VisitRecorder, audit: AuditLog) {
        let path = directory.path("restored-\(capacity).sqlite")
        let store = try SQLiteStore(path: path)
        let audit = AuditLog(database: path, logger: quietLogger)
        // Batches of 10, written only when full: the test knows what is written when.
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 10, flushInterval: .seconds(3600), retry: Self.fastRetry),
            journal: try VisitJournal.create(database: path, worker: 0, capacity: capacity), audit: audit, logger: quietLogger)
        recorder.start()
        for _ in 0..<10 { recorder.record(Self.visit("FI")) }
        try await waitUntil("the first batch written", seconds: 10) { try store.stats().totalVisitors == 10 }
        let snapshot = directory.path("snapshot-\(capacity).sqlite")
        try DatabaseQueue(path: path).backup(to: try DatabaseQueue(path: snapshot))
        for _ in 0..<lost { recorder.record(Self.visit("SE")) }
        try await waitUntil("the batches the restore loses written", seconds: 10) { try store.stats().totalVisitors == 10 + lost }
        try DatabaseQueue(path: snapshot).backup(to: try DatabaseQueue(path: path))
        #expect(try store.stats().totalVisitors == 10)
        for _ in 0..<10 { recorder.record(Self.visit("NO")) }
        return (store, recorder, audit)
    }

    @Test func batchesADatabaseLostAreWrittenAgainFromTheJournal() async throws {
        let (store, recorder, audit) = try await restoreWorker(capacity: 1 << 20, lost: 20)
        defer { recorder.stop() }
        try await waitUntil("every visit in the database", seconds: 10) { try store.stats().totalVisitors == 40 }
        #expect(try store.stats().countries == ["FI": 10, "SE": 20, "NO": 10])
        #expect(try store.visitorRowCount() == 40)
        let rewritten = try AuditLog.read(path: audit.path).filter { $0.event == "lost_batches_rewritten" }
        #expect(rewritten.map(\.visits) == [20])
    }

    /// The same restore with nothing recorded after it: a clean stop, with no visit left to write, still
    /// finds what the database lost before it removes the journal.
    @Test func aCleanStopAfterARestoredBackupWritesTheLostBatchesBeforeRemovingTheJournal() async throws {
        let path = directory.path("restored-stop.sqlite")
        let store = try SQLiteStore(path: path)
        let audit = AuditLog(database: path, logger: quietLogger)
        let journal = try VisitJournal.create(database: path, worker: 0, capacity: 1 << 20)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 10, flushInterval: .seconds(3600), retry: Self.fastRetry),
            journal: journal, audit: audit, logger: quietLogger)
        recorder.start()
        for _ in 0..<10 { recorder.record(Self.visit("FI")) }
        try await waitUntil("the first batch written", seconds: 10) { try store.stats().totalVisitors == 10 }
        let snapshot = directory.path("snapshot-stop.sqlite")
        try DatabaseQueue(path: path).backup(to: try DatabaseQueue(path: snapshot))
        for _ in 0..<20 { recorder.record(Self.visit("SE")) }
        try await waitUntil("the batches the restore loses written", seconds: 10) { try store.stats().totalVisitors == 30 }
        try DatabaseQueue(path: snapshot).backup(to: try DatabaseQueue(path: path))
        #expect(try store.stats().totalVisitors == 10)

        recorder.stop()
        #expect(try store.stats().countries == ["FI": 10, "SE": 20])
        #expect(try store.visitorRowCount() == 30)
        #expect(!FileManager.default.fileExists(atPath: journal.path))
        let rewritten = try AuditLog.read(path: audit.path).filter { $0.event == "lost_batches_rewritten" }
        #expect(rewritten.map(\.visits) == [20])
    }

    @Test func batchesADatabaseLostAfterTheRingReusedThemAreReportedLostOnce() async throws {
        // About 60 visits fill a 4 KiB ring: 200 written after the snapshot go round it three times.
        let (store, recorder, audit) = try await restoreWorker(capacity: 4096, lost: 200)
        defer { recorder.stop() }
        try await waitUntil("three failed writes", seconds: 10) { recorder.statistics.failedWrites >= 3 }
        #expect(try store.stats().totalVisitors == 10)
        let events = try AuditLog.read(path: audit.path)
        #expect(events.filter { $0.event == "visits_lost" }.count == 1)
        #expect(events.contains { $0.event == "write_failed" && ($0.error ?? "").contains("reused their part") })
        #expect(!events.contains { $0.event == "lost_batches_rewritten" })
    }

    @Test func withHashedAddressesTheJournalKeepsNoAddressAndItsReplayCountsUniqueVisitors() throws {
        let path = directory.path("hashed.sqlite")
        let store = try SQLiteStore(path: path, busyTimeout: 0.05, storeIP: .hashed)
        _ = try store.dayKeys()  // made by an earlier batch
        var configuration = VisitRecorder.Configuration(batchSize: 1000, flushInterval: .seconds(3600), retry: Self.fastRetry)
        configuration.storeIP = .hashed
        var recorder: VisitRecorder? = VisitRecorder(
            store: store, configuration: configuration,
            journal: try VisitJournal.create(database: path, worker: 0, capacity: 1 << 20), logger: quietLogger)
        let journalPath = try #require(try VisitJournal.all(database: path).first)
        let lock = try SQLiteWriteLock(path)
        recorder?.start()
        // Four visitors, one of them three times.
        for thread in [1, 2, 3, 4, 4, 4] { recorder?.record(Self.visit("PT", thread: thread)) }
        recorder?.stop()
        recorder = nil
        let bytes = try Data(contentsOf: URL(fileURLWithPath: journalPath))
        #expect(bytes.range(of: Data("192.0.2.".utf8)) == nil, "the journal holds an address")
        try lock.release()
        let outcome = try #require(try JournalReplay.replay(path: journalPath, into: store, batchSize: 100, sorting: .standard))
        #expect(outcome.visits == 6)
        let stats = try store.stats()
        #expect(stats.totalVisitors == 6)
        #expect(stats.uniqueVisitorsToday == 4)
    }

    @Test func aFileThatCannotBeReplayedDoesNotHoldUpTheJournalsAfterIt() async throws {
        let path = directory.path("blocked.sqlite")
        let store = try SQLiteStore(path: path)
        let audit = AuditLog(database: path, logger: quietLogger)
        // Sorts before the real journal, and its open fails (EISDIR).
        let blocker = path + ".journal-0-0"
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        var ended: VisitJournal? = try VisitJournal.create(database: path, worker: 1, capacity: 1 << 16)
        for index in 0..<30 {
            _ = try #require(ended?.append(JournalRecord(kind: .row, visit: Self.visit("CH", thread: index)), written: 0))
        }
        ended = nil
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 10, flushInterval: .milliseconds(50), retry: Self.fastRetry, worker: 2),
            audit: audit, logger: quietLogger)
        recorder.start()
        try await waitUntil("store.stats().totalVisitors == 30", seconds: 10) { try store.stats().totalVisitors == 30 }
        recorder.stop()
        #expect(try store.stats().countries == ["CH": 30])
        #expect(try VisitJournal.all(database: path) == [blocker])
        let failed = try AuditLog.read(path: audit.path).filter { $0.event == "journal_replay_failed" }
        #expect(failed.first?.error?.contains(blocker) == true)
    }

    @Test func aSpillFileFromAnEarlierVersionIsStillReplayed() async throws {
        let path = directory.path("spill.sqlite")
        let store = try SQLiteStore(path: path)
        try SpillFile(database: path, worker: 2).append(SQLiteStoreTests.visits(["BR", "BR", "IT"]), worker: 2)
        let recorder = VisitRecorder(
            store: store, configuration: .init(batchSize: 10, flushInterval: .milliseconds(50)), logger: quietLogger)
        recorder.start()
        try await waitUntil("SpillFile.all(database: path).isEmpty", seconds: 10) { try SpillFile.all(database: path).isEmpty }
        recorder.stop()
        #expect(recorder.statistics.replayedVisits == 3)
        #expect(try store.stats().countries == ["BR": 2, "IT": 1])
    }

    @Test func aVisitRecordedAfterTheWriterStoppedIsCountedAsRecordedAndNotWritten() throws {
        let store = try SQLiteStore(path: directory.path("late.sqlite"))
        let recorder = VisitRecorder(store: store, batchSize: 10, flushInterval: .milliseconds(50), logger: quietLogger)
        recorder.start()
        recorder.record(Self.visit("US"))
        recorder.stop()
        recorder.record(Self.visit("US"))
        #expect(recorder.statistics.visitsRecorded == 2)
        #expect(recorder.statistics.visitsWritten == 1)
        #expect(recorder.pendingVisits == 0)
        #expect(try store.stats().totalVisitors == 1)
    }

    @Test func visitsInNoJournalAreReportedLostWhenAStopCannotWriteThem() throws {
        let path = directory.path("lost.sqlite")
        let store = try SQLiteStore(path: path, busyTimeout: 0.05)
        let audit = AuditLog(database: path, logger: quietLogger)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(
                batchSize: 1000, flushInterval: .seconds(3600), retry: Self.fastRetry, stopRetryLimit: .milliseconds(300)),
            audit: audit, logger: quietLogger)
        recorder.start()
        let lock = try SQLiteWriteLock(path)
        for index in 0..<30 { recorder.record(Self.visit(index % 2 == 0 ? "US" : "CA")) }
        recorder.stop()
        try lock.release()
        let lost = try #require(try AuditLog.read(path: audit.path).first { $0.event == "visits_lost" })
        #expect(lost.visits == 30)
        #expect(lost.action.contains("CA=15 US=15"))
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func aSpillFileThatCannotBeReplayedDoesNotHoldUpNewWrites() async throws {
        let path = directory.path("stuck.sqlite")
        let store = try SQLiteStore(path: path)
        // A directory where a spill file would be: opening it for the replay fails every time.
        try FileManager.default.createDirectory(atPath: path + ".spill-9.jsonl", withIntermediateDirectories: false)
        let audit = AuditLog(database: path, logger: quietLogger)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(batchSize: 10, flushInterval: .milliseconds(50), retry: Self.fastRetry),
            audit: audit, logger: quietLogger)
        recorder.start()
        for _ in 0..<25 { recorder.record(Self.visit("NL")) }
        try await waitUntil("store.stats().totalVisitors == 25", seconds: 10) { try store.stats().totalVisitors == 25 }
        recorder.stop()
        #expect(try AuditLog.read(path: audit.path).contains { $0.event == "journal_replay_failed" })
    }
}
