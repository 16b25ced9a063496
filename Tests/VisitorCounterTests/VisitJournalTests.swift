import Foundation
import GRDB
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The journal file itself, and the replay of a journal whose worker ended, on real files and a real
/// SQLite database. A worker's death is the journal value going away: its descriptor, and with it
/// the lock, is closed, while the mapped pages stay in the file.
struct VisitJournalTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    static func visit(_ code: String, _ index: Int, userAgent: String = "Mozilla/5.0 test") -> Visit {
        Visit(
            ip: "198.51.100.\(index % 250)", userAgent: Array("\(userAgent) \(index)".utf8), countryCode: code,
            countryName: nil, time: Date())
    }

    /// Appends `count` visits to a new journal of worker `worker` and lets the journal go, as a killed
    /// worker does; answers its path.
    func journalOfAnEndedWorker(
        database: String, worker: Int = 0, count: Int, codes: [String] = ["US", "GB", "DE"], capacity: Int = 1 << 20,
        seal: (Visit) -> Visit.Sealed? = { _ in nil }
    ) throws -> String {
        let journal = try VisitJournal.create(database: database, worker: worker, capacity: capacity)
        var end: UInt64 = 0
        for index in 0..<count {
            var visit = Self.visit(codes[index % codes.count], index)
            visit.sealed = seal(visit)
            end = try #require(journal.append(JournalRecord(kind: .row, visit: visit), written: 0))
        }
        #expect(journal.end == end)
        return journal.path
    }

    @Test func recordsComeBackAsTheyWentIn() throws {
        let journal = try VisitJournal.create(database: directory.path("a.sqlite"), worker: 0, capacity: 4096)
        var visit = Self.visit("FR", 7, userAgent: "Mozilla/5.0 (Ünïcode)")
        let first = try #require(journal.append(JournalRecord(kind: .row, visit: visit), written: 0))
        visit.sealed = Visit.Sealed(storedIP: nil, visitorHash: 42)
        _ = try #require(journal.append(JournalRecord(kind: .withoutRow, visit: visit), written: 0))
        let tail = journal.records(from: 0)
        #expect(!tail.damaged)
        #expect(tail.records.count == 2)
        let row = tail.records[0].record
        #expect(row.kind == .row)
        #expect(row.visit.ip == "198.51.100.7")
        #expect(row.visit.userAgent == "Mozilla/5.0 (Ünïcode) 7")
        #expect(row.visit.countryCode == "FR")
        #expect(row.visit.country == "France")
        #expect(abs(row.visit.time.timeIntervalSince(visit.time)) < 0.001)
        #expect(tail.records[0].end == first)
        #expect(tail.records[1].record.kind == .withoutRow)
        #expect(tail.records[1].record.visit.sealed?.visitorHash == 42)
        #expect(journal.records(from: first).records.count == 1)
    }

    @Test func theRingWrapsAndRefusesWhatWouldOverwriteUnwrittenRecords() throws {
        let journal = try VisitJournal.create(database: directory.path("ring.sqlite"), worker: 0, capacity: 4096)
        var written: UInt64 = 0
        var appended = 0
        // Each record takes about 80 bytes: 200 of them go round the 4 KiB ring about four times.
        for index in 0..<200 {
            let record = JournalRecord(kind: .row, visit: Self.visit("JP", index))
            guard let end = journal.append(record, written: written) else {
                Issue.record("no room at \(index) although everything before was written")
                return
            }
            appended += 1
            if index % 10 == 9 {
                // Every record from `written` on reads back whole, across the ring's end too.
                let tail = journal.records(from: written)
                #expect(!tail.damaged)
                #expect(tail.records.map(\.record.visit.userAgent) == (index - tail.records.count + 1...index).map { "Mozilla/5.0 test \($0)" })
                written = end
            }
        }
        #expect(appended == 200)
        #expect(journal.end > 4096 * 3)
        // Nothing written: the ring fills up and then answers nil rather than overwrite.
        var accepted = 0
        while journal.append(JournalRecord(kind: .row, visit: Self.visit("JP", accepted)), written: written) != nil { accepted += 1 }
        #expect(accepted > 40 && accepted < 60)
        #expect(journal.records(from: written).records.count == accepted)
    }

    @Test func anEndedWorkersJournalIsReplayedOnceAndRemoved() throws {
        let database = directory.path("replay.sqlite")
        let store = try VisitorStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 250)
        #expect(try VisitJournal.all(database: database) == [path])

        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 100))
        #expect(outcome == JournalReplay.Outcome(batches: 3, visits: 250))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().countries == ["US": 84, "GB": 83, "DE": 83])
        #expect(try store.visitorRowCount() == 250)
        try VisitorStoreTests.expectInvariant(store)
    }

    @Test func aReplayWritesOnlyWhatTheWorkerHadNotWritten() throws {
        let database = directory.path("part.sqlite")
        let store = try VisitorStore(path: database)
        var journal: VisitJournal? = try VisitJournal.create(database: database, worker: 0, capacity: 1 << 16)
        var batch = VisitBatch()
        var ends: [UInt64] = []
        for index in 0..<10 {
            let visit = Self.visit("SE", index)
            ends.append(try #require(journal?.append(JournalRecord(kind: .row, visit: visit), written: 0)))
            if index < 4 { batch.append(visit) }
        }
        // The worker wrote its first four visits, with the journal's ID as it knows it, and was killed.
        batch.journal = JournalSpan(id: try #require(journal?.id), start: 0, end: ends[3])
        #expect(try store.write(batch))
        let path = try #require(journal?.path)
        journal = nil
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 100))
        #expect(outcome.visits == 6)
        #expect(try store.stats().totalVisitors == 10)
    }

    @Test func aReplayCutShortAndCutShortAgainWritesEveryVisitExactlyOnce() throws {
        let database = directory.path("cut.sqlite")
        let store = try VisitorStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 1000)
        // The first replay ends after its first batch, the second after its second: as a worker killed
        // during a replay, twice.
        var batches = 0
        let first = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 300, stopping: { true }))
        #expect(first.visits == 300)
        let second = try #require(
            try JournalReplay.replay(path: path, into: store, batchSize: 300, stopping: { batches += 1; return batches == 2 }))
        #expect(second.visits == 600)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().totalVisitors == 900)
        let last = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 300))
        #expect(last.visits == 100)
        #expect(try store.stats().totalVisitors == 1000)
        #expect(try store.visitorRowCount() == 1000)
        let agents = try store.read { db in try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_agent) FROM visitors") }
        #expect(agents == 1000)
    }

    @Test func aReplayThatEndedBeforeRemovingTheJournalCountsNothingTwice() throws {
        let database = directory.path("twice.sqlite")
        let store = try VisitorStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 50)
        let copy = try Data(contentsOf: URL(fileURLWithPath: path))
        let (id, end) = try { () throws -> (String, UInt64) in
            let journal = try VisitJournal.openOrphan(path: path)
            return (journal.id, journal.end)
        }()
        #expect(try JournalReplay.replay(path: path, into: store, batchSize: 20)?.visits == 50)
        // As if the process had died after the last commit and before the unlink: the file and its
        // progress row are both there.
        try copy.write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        try DatabaseQueue(path: database).write { db in
            try db.execute(
                sql: "INSERT INTO journal_progress (journal, written, updated_at) VALUES (?, ?, 'now')",
                arguments: [id, Int64(end)])
        }
        let again = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 20))
        #expect(again == JournalReplay.Outcome())
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().totalVisitors == 50)
    }

    @Test func untrustedFilesAreLeftAsTheyAre() throws {
        let database = directory.path("trust.sqlite")
        let store = try VisitorStore(path: database)
        let open = try journalOfAnEndedWorker(database: database, worker: 1, count: 5)
        chmod(open, 0o644)
        #expect(throws: VisitJournal.OpenError.self) { try JournalReplay.replay(path: open, into: store, batchSize: 10) }
        let target = try journalOfAnEndedWorker(database: directory.path("elsewhere.sqlite"), count: 5)
        let link = database + ".journal-2-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: VisitJournal.OpenError.self) { try JournalReplay.replay(path: link, into: store, batchSize: 10) }
        #expect(FileManager.default.fileExists(atPath: open))
        #expect(FileManager.default.fileExists(atPath: target))
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func aLiveJournalIsNotReplayed() throws {
        let database = directory.path("live.sqlite")
        let store = try VisitorStore(path: database)
        let journal = try VisitJournal.create(database: database, worker: 0, capacity: 4096)
        _ = journal.append(JournalRecord(kind: .row, visit: Self.visit("US", 1)), written: 0)
        #expect(try JournalReplay.replay(path: journal.path, into: store, batchSize: 10) == nil)
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func withHashedAddressesTheJournalHoldsNoAddressAndUniquesStillCount() throws {
        let database = directory.path("hashed.sqlite")
        let store = try VisitorStore(path: database, storeIP: .hashed)
        let keys = try store.dayKeys()
        let key = try #require(keys[UTCTimestamp.day(Date())])
        let path = try journalOfAnEndedWorker(database: database, count: 10, codes: ["NL"]) { visit in
            Visit.Sealed(
                storedIP: StoreIPMode.hashed.stored(visit.ip, key: key),
                visitorHash: VisitorStore.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: key))
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data("198.51.100.".utf8)) == nil)
        #expect(bytes.range(of: Data("Mozilla/5.0 test 3".utf8)) != nil)
        _ = try JournalReplay.replay(path: path, into: store, batchSize: 4)
        let stats = try store.stats()
        #expect(stats.totalVisitors == 10)
        #expect(stats.uniqueVisitorsToday == 10)
        let stored = try store.read { db in try String.fetchAll(db, sql: "SELECT ip FROM visitors") }
        #expect(stored.allSatisfy { $0.count == 16 && !$0.contains(".") })
    }
}
