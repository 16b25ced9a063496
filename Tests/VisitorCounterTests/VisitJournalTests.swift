import Foundation
import GRDB
import Synchronization
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

    /// A killed worker's page views come back from its journal under their pages and referrers, those
    /// counted without a row too.
    @Test func aReplayedJournalCountsItsVisitsUnderTheirPages() throws {
        let database = directory.path("pages.sqlite")
        // Let go at the end of the block, as a killed worker's is.
        let path = try { () throws -> String in
            let journal = try VisitJournal.create(database: database, worker: 0, capacity: 1 << 16)
            for (index, (path, referrer, kind)) in [
                ("/about.html", "news.example.com", JournalRecord.Kind.row), ("/", nil, .row),
                ("/about.html", nil, .withoutRow), ("/caf%C3%A9", "search.example.org", .withoutRow),
            ].enumerated() {
                var visit = Self.visit("US", index)
                visit.path = path
                visit.referrer = referrer
                _ = try #require(journal.append(JournalRecord(kind: kind, visit: visit), written: 0))
            }
            return journal.path
        }()
        let store = try SQLiteStore(path: database)
        _ = try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: .standard)
        let stats = try store.stats()
        #expect(stats.totalVisitors == 4)
        #expect(stats.pages == ["/about.html": 2, "/": 1, "/caf%C3%A9": 1])
        #expect(stats.referrers == ["news.example.com": 1, "search.example.org": 1])
    }

    @Test func aVisitAtTheLastInstantOfADayStaysInThatDay() throws {
        let journal = try VisitJournal.create(database: directory.path("midnight.sqlite"), worker: 0, capacity: 4096)
        var visit = Self.visit("NZ", 1)
        // 2025-11-25 23:59:59.9996 UTC: its milliseconds rounded to the nearest are the next day's.
        visit.time = Date(timeIntervalSince1970: 1_764_115_199.9996)
        _ = try #require(journal.append(JournalRecord(kind: .row, visit: visit), written: 0))
        let back = try #require(journal.records(from: 0).records.first).record.visit.time
        #expect(UTCTimestamp.day(back) == UTCTimestamp.day(visit.time))
        #expect(back <= visit.time && visit.time.timeIntervalSince(back) < 0.001)
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

    /// What a live worker reads back when the database lost batches it had committed: the records from
    /// where the database has the journal up to where its next batch begins, in batches with their
    /// spans, unless the ring has reused that part since.
    @Test func aLostPartIsReadBackUpToTheNextBatchUnlessTheRingReusedIt() throws {
        let journal = try VisitJournal.create(database: directory.path("lost.sqlite"), worker: 0, capacity: 4096)
        var ends: [UInt64] = [0]
        for index in 0..<10 {
            ends.append(try #require(journal.append(JournalRecord(kind: .row, visit: Self.visit("NL", index)), written: 0)))
        }
        let lost = JournalReplay.batches(of: journal, from: ends[2], upTo: ends[6], batchSize: 3, sorting: .standard)
        #expect(!lost.damaged)
        #expect(lost.batches.map(\.visits.count) == [3, 1])
        #expect(lost.batches.map(\.journal) == [
            JournalSpan(id: journal.id, start: ends[2], end: ends[5]), JournalSpan(id: journal.id, start: ends[5], end: ends[6]),
        ])
        #expect(JournalReplay.batches(of: journal, from: ends[2], upTo: ends[6] + 1, batchSize: 3, sorting: .standard).damaged)
        // Everything counted as written, the ring goes round past the lost part: it cannot be read back.
        var written = journal.end
        for index in 0..<100 {
            written = try #require(journal.append(JournalRecord(kind: .row, visit: Self.visit("NL", index)), written: written))
        }
        #expect(JournalReplay.batches(of: journal, from: ends[2], upTo: ends[6], batchSize: 3, sorting: .standard).damaged)
    }

    @Test func anEndedWorkersJournalIsReplayedOnceAndRemoved() throws {
        let database = directory.path("replay.sqlite")
        let store = try SQLiteStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 250)
        #expect(try VisitJournal.all(database: database) == [path])

        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 100, sorting: .standard))
        #expect(outcome == JournalReplay.Outcome(batches: 3, visits: 250))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().countries == ["US": 84, "GB": 83, "DE": 83])
        #expect(try store.visitorRowCount() == 250)
        try SQLiteStoreTests.expectInvariant(store)
    }

    @Test func aReplayWritesOnlyWhatTheWorkerHadNotWritten() throws {
        let database = directory.path("part.sqlite")
        let store = try SQLiteStore(path: database)
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
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 100, sorting: .standard))
        #expect(outcome.visits == 6)
        #expect(try store.stats().totalVisitors == 10)
    }

    @Test func aReplayCutShortAndCutShortAgainWritesEveryVisitExactlyOnce() throws {
        let database = directory.path("cut.sqlite")
        let store = try SQLiteStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 1000)
        // The first replay ends after its first batch, the second after its second: as a worker killed
        // during a replay, twice.
        var batches = 0
        let first = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 300, sorting: .standard, stopping: { true }))
        #expect(first.visits == 300)
        let second = try #require(
            try JournalReplay.replay(path: path, into: store, batchSize: 300, sorting: .standard, stopping: { batches += 1; return batches == 2 }))
        #expect(second.visits == 600)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().totalVisitors == 900)
        let last = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 300, sorting: .standard))
        #expect(last.visits == 100)
        #expect(try store.stats().totalVisitors == 1000)
        #expect(try store.visitorRowCount() == 1000)
        let agents = try store.read { db in try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_agent) FROM visitors") }
        #expect(agents == 1000)
    }

    @Test func aReplayThatEndedBeforeRemovingTheJournalCountsNothingTwice() throws {
        let database = directory.path("twice.sqlite")
        let store = try SQLiteStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 50)
        let copy = try Data(contentsOf: URL(fileURLWithPath: path))
        let (id, end) = try { () throws -> (String, UInt64) in
            let journal = try VisitJournal.openOrphan(path: path)
            return (journal.id, journal.end)
        }()
        #expect(try JournalReplay.replay(path: path, into: store, batchSize: 20, sorting: .standard)?.visits == 50)
        // As if the process had died after the last commit and before the unlink: the file and its
        // progress row are both there.
        try copy.write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        try DatabaseQueue(path: database).write { db in
            try db.execute(
                sql: "INSERT INTO journal_progress (journal, written, updated_at) VALUES (?, ?, 'now')",
                arguments: [id, Int64(end)])
        }
        let again = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 20, sorting: .standard))
        #expect(again == JournalReplay.Outcome())
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try store.stats().totalVisitors == 50)
    }

    @Test func untrustedFilesAreLeftAsTheyAre() throws {
        let database = directory.path("trust.sqlite")
        let store = try SQLiteStore(path: database)
        let open = try journalOfAnEndedWorker(database: database, worker: 1, count: 5)
        chmod(open, 0o644)
        #expect(throws: VisitJournal.OpenError.self) { try JournalReplay.replay(path: open, into: store, batchSize: 10, sorting: .standard) }
        let target = try journalOfAnEndedWorker(database: directory.path("elsewhere.sqlite"), count: 5)
        let link = database + ".journal-2-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: VisitJournal.OpenError.self) { try JournalReplay.replay(path: link, into: store, batchSize: 10, sorting: .standard) }
        #expect(FileManager.default.fileExists(atPath: open))
        #expect(FileManager.default.fileExists(atPath: target))
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func aJournalRemovedSinceTheListingIsGoneNotAFailure() throws {
        // Another worker replayed and removed it between this one's directory listing and its open.
        let database = directory.path("gone.sqlite")
        let store = try SQLiteStore(path: database)
        #expect(try JournalReplay.replay(path: database + ".journal-0-removed", into: store, batchSize: 10, sorting: .standard) == nil)
    }

    @Test(arguments: [
        (ENOENT, "gone"), (EACCES, "untrusted"), (EPERM, "untrusted"), (ELOOP, "untrusted"), (EIO, "failed"),
    ])
    func whatAFailedOpenMeans(code: Int32, meaning: String) {
        // EACCES cannot be had for real here: the tests run as root, which opens any file.
        let found: String
        switch VisitJournal.openFailure(path: "/x.journal-0-a", errno: code) {
        case VisitJournal.OpenError.gone: found = "gone"
        case VisitJournal.OpenError.untrusted: found = "untrusted"
        default: found = "failed"
        }
        #expect(found == meaning)
    }

    @Test func aNewJournalIsLockedBeforeAReplayCanFindIt() throws {
        // One thread makes journals (and removes them at once) while another lists and tries to take
        // each one it finds, as a worker's replay does. No journal may be found unlocked and empty.
        let database = directory.path("race.sqlite")
        let done = Atomic<Bool>(false)
        let taken = Synchronization.Mutex<[String]>([])
        let scanned = DispatchSemaphore(value: 0)
        let scanner = Thread {
            while !done.load(ordering: .acquiring) {
                for path in (try? VisitJournal.all(database: database)) ?? [] {
                    do {
                        _ = try VisitJournal.openOrphan(path: path)
                        taken.withLock { $0.append("\(path): opened as an orphan") }
                    } catch VisitJournal.OpenError.untrusted(_, let reason) {
                        taken.withLock { $0.append("\(path): \(reason)") }
                    } catch {}
                }
            }
            scanned.signal()
        }
        scanner.start()
        defer {
            done.store(true, ordering: .releasing)
            scanned.wait()
        }
        for _ in 0..<3000 {
            let journal = try VisitJournal.create(database: database, worker: 0, capacity: 4096)
            try journal.remove()
        }
        #expect(taken.withLock { $0 }.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.hasPrefix("race.") }.isEmpty)
    }

    @Test func aWorkerSlotMakesNoMoreJournalsWhileTooManyOfItsOwnWait() throws {
        // A worker that crashes at every start while the database is down: each start left a journal.
        let database = directory.path("loop.sqlite")
        var waiting: [String] = []
        for index in 0..<VisitJournal.maxWaitingPerWorker {
            waiting.append(try journalOfAnEndedWorker(database: database, worker: 1, count: index))
        }
        #expect(throws: VisitJournal.CreateError.self) {
            try VisitJournal.create(database: database, worker: 1, capacity: 4096)
        }
        #expect(try VisitJournal.all(database: database).count == VisitJournal.maxWaitingPerWorker)
        // Other slots (worker 10's name starts like worker 1's) are not held up.
        _ = try VisitJournal.create(database: database, worker: 10, capacity: 4096)
        // Once one is replayed, the slot gets a journal again.
        let store = try SQLiteStore(path: database)
        _ = try JournalReplay.replay(path: waiting[0], into: store, batchSize: 10, sorting: .standard)
        _ = try VisitJournal.create(database: database, worker: 1, capacity: 4096)
    }

    /// A 128-byte record: 32 of them fill a 4 KiB ring exactly, so each lap's records lie where the
    /// last lap's did.
    static func record128(_ label: String) throws -> JournalRecord {
        let code = "JP", name = "Japan", ip = "198.51.100.7"
        // The page `/` takes its 3 bytes of lengths and 1 of path.
        let userAgent = label + String(repeating: "a", count: 128 - 32 - code.count - name.count - ip.count - label.count - 4)
        let record = JournalRecord(
            kind: .row, visit: Visit(trustedIP: ip, userAgent: userAgent, country: name, countryCode: code, time: Date()))
        try #require(record.encodedLength == 128)
        return record
    }

    /// Two laps of a 4 KiB journal, the second unwritten, then the ring's pages as they were after the
    /// first lap, as after a power cut that kept the header's `end` and lost the second lap's pages.
    func journalWithTheLastLapLost(database: String, store: SQLiteStore) throws -> String {
        var journal: VisitJournal? = try VisitJournal.create(database: database, worker: 0, capacity: 4096)
        let lap1 = try Self.record128("lap1-"), lap2 = try Self.record128("lap2-")
        for _ in 0..<32 { _ = try #require(journal?.append(lap1, written: 0)) }
        let path = try #require(journal?.path)
        let firstLap = try Data(contentsOf: URL(fileURLWithPath: path))[4096..<8192]
        var batch = VisitBatch()
        batch.append(lap1.visit)
        batch.journal = JournalSpan(id: try #require(journal?.id), start: 0, end: 4096)
        #expect(try store.write(batch))
        for _ in 0..<32 { _ = try #require(journal?.append(lap2, written: 4096)) }
        #expect(journal?.end == 8192)
        journal = nil
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: firstLap)
        try handle.close()
        return path
    }

    @Test func aRecordLeftByTheRingsLastLapIsNotReplayedAsANewOne() throws {
        let database = directory.path("lap.sqlite")
        let store = try SQLiteStore(path: database)
        let path = try journalWithTheLastLapLost(database: database, store: store)
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: .standard))
        #expect(outcome.damaged)
        #expect(outcome.visits == 0)
        #expect(FileManager.default.fileExists(atPath: path + ".rejected"))
        #expect(try store.stats().totalVisitors == 1)
    }

    @Test func aJournalOfTheVersionBeforeWithoutPositionsIsStillReplayed() throws {
        let database = directory.path("v1.sqlite")
        let store = try SQLiteStore(path: database)
        let path = try journalOfAnEndedWorker(database: database, count: 20)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        // The version before wrote VCJOURN1 and left the position's bytes zero.
        try handle.write(contentsOf: Data("VCJOURN1".utf8))
        var position: UInt64 = 0
        for _ in 0..<20 {
            try handle.seek(toOffset: 4096 + position)
            let bytes = try #require(try handle.read(upToCount: 4))
            let length = UInt64(UInt32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
            try handle.seek(toOffset: 4096 + position + 11)
            try handle.write(contentsOf: Data(count: 5))
            position += length
        }
        try handle.close()
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: .standard))
        #expect(outcome == JournalReplay.Outcome(batches: 2, visits: 20))
    }

    /// Journals before version 3 wrote bots' requests as rows and left them to the store: the replay
    /// sorts them by `--count-bots`. A version 3 journal's rows are visits, sorted when recorded.
    @Test(arguments: [("VCJOURN2", false), ("VCJOURN2", true), ("VCJOURN3", false)])
    func botRowsOfAnEarlierJournalAreSortedAtTheReplay(magic: String, countsBots: Bool) throws {
        let database = directory.path("bots-\(magic)-\(countsBots).sqlite")
        let store = try SQLiteStore(path: database)
        let path: String
        do {
            // Goes out of scope as a killed worker's journal does.
            let journal = try VisitJournal.create(database: database, worker: 0, capacity: 1 << 16)
            for userAgent in ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)"] {
                let visit = Visit(ip: "192.0.2.1", userAgent: Array(userAgent.utf8), countryCode: "US", countryName: nil, time: Date())
                _ = try #require(journal.append(JournalRecord(kind: .row, visit: visit), written: 0))
            }
            path = journal.path
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Data(magic.utf8))
        try handle.close()
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: VisitSorting(countsBots: countsBots)))
        #expect(outcome.visits == 2)
        let sorts = magic == "VCJOURN2" && !countsBots
        #expect(try store.stats().totalVisitors == (sorts ? 1 : 2))
        #expect(try store.stats().bots == (sorts ? 1 : 0))
    }

    /// The version before this one wrote version 3 journals with nothing after the end in the header:
    /// its rows were sorted by the check before, which took these crawlers of isbot's corpus for
    /// people. Replayed now, the new check sorts them out; a journal whose header holds this check's
    /// version is taken as sorted already.
    @Test(arguments: [true, false]) func rowsOfTheVersionBeforeAreSortedByTheNewCheck(writtenBefore: Bool) throws {
        let crawlers = try UserAgentCorpus("crawlers.yml").userAgents.filter {
            $0.hasPrefix("Amazon-Route53-Health-Check-Service") || $0 == "ELB-HealthChecker/2.0" || $0.hasPrefix("MetaFeedly/")
        }
        #expect(crawlers.count == 3)
        let database = directory.path("check-\(writtenBefore).sqlite")
        let store = try SQLiteStore(path: database)
        let path: String
        do {
            let journal = try VisitJournal.create(database: database, worker: 0, capacity: 1 << 16)
            for userAgent in crawlers + ["Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"] {
                let visit = Visit(ip: "192.0.2.1", userAgent: Array(userAgent.utf8), countryCode: "US", countryName: nil, time: Date())
                _ = try #require(journal.append(JournalRecord(kind: .row, visit: visit), written: 0))
            }
            path = journal.path
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 64)
        let stored = try #require(try handle.read(upToCount: 4))
        #expect(stored == Data([UInt8(BotClassifier.version), 0, 0, 0]))
        if writtenBefore {
            try handle.seek(toOffset: 64)
            try handle.write(contentsOf: Data(count: 4))
        }
        try handle.close()
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: .standard))
        #expect(outcome.visits == 4)
        #expect(try store.stats().totalVisitors == (writtenBefore ? 1 : 4))
        #expect(try store.stats().bots == (writtenBefore ? 3 : 0))
        #expect(try store.visitorRowCount() == (writtenBefore ? 1 : 4))
    }

    /// An owner's request is journaled as such, without its address or user agent, and replayed into
    /// `ignored` alone.
    @Test func anIgnoredRequestIsReplayedIntoIgnoredOnly() throws {
        let database = directory.path("ignored.sqlite")
        let store = try SQLiteStore(path: database)
        let path: String
        do {
            let journal = try VisitJournal.create(database: database, worker: 0, capacity: 1 << 16)
            var owner = Visit(ip: "198.51.100.7", userAgent: Array("owner-agent".utf8), countryCode: "US", countryName: nil, time: Date())
            owner.ignored = true
            _ = try #require(journal.append(JournalRecord(kind: .ignored, visit: owner), written: 0))
            _ = try #require(journal.append(JournalRecord(kind: .row, visit: Self.visit("GB", 1)), written: 0))
            path = journal.path
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data("198.51.100.7".utf8)) == nil && bytes.range(of: Data("owner-agent".utf8)) == nil)
        let outcome = try #require(try JournalReplay.replay(path: path, into: store, batchSize: 10, sorting: .standard))
        #expect(outcome.visits == 2)
        let stats = try store.stats()
        #expect(stats.ignored == 1)
        #expect(stats.totalVisitors == 1)
        #expect(stats.countries == ["GB": 1])
        #expect(try store.visitorRowCount() == 1)
    }

    @Test func aLiveJournalIsNotReplayed() throws {
        let database = directory.path("live.sqlite")
        let store = try SQLiteStore(path: database)
        let journal = try VisitJournal.create(database: database, worker: 0, capacity: 4096)
        _ = journal.append(JournalRecord(kind: .row, visit: Self.visit("US", 1)), written: 0)
        #expect(try JournalReplay.replay(path: journal.path, into: store, batchSize: 10, sorting: .standard) == nil)
        #expect(try store.stats().totalVisitors == 0)
    }

    @Test func withHashedAddressesTheJournalHoldsNoAddressAndUniquesStillCount() throws {
        let database = directory.path("hashed.sqlite")
        let store = try SQLiteStore(path: database, storeIP: .hashed)
        let keys = try store.dayKeys()
        let key = try #require(keys[UTCTimestamp.day(Date())])
        let path = try journalOfAnEndedWorker(database: database, count: 10, codes: ["NL"]) { visit in
            Visit.Sealed(
                storedIP: StoreIPMode.hashed.stored(visit.ip, key: key),
                visitorHash: BatchPlan.visitorHash(ip: visit.ip, userAgent: visit.userAgent, key: key))
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data("198.51.100.".utf8)) == nil)
        #expect(bytes.range(of: Data("Mozilla/5.0 test 3".utf8)) != nil)
        _ = try JournalReplay.replay(path: path, into: store, batchSize: 4, sorting: .standard)
        let stats = try store.stats()
        #expect(stats.totalVisitors == 10)
        #expect(stats.uniqueVisitorsToday == 10)
        let stored = try store.read { db in try String.fetchAll(db, sql: "SELECT ip FROM visitors") }
        #expect(stored.allSatisfy { $0.count == 16 && !$0.contains(".") })
    }
}
