import Foundation
import GRDB
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Processes of the counter killed behind the real nginx, the ways production kills them: SIGKILL of
/// a worker (the OOM killer), of the whole service (systemd after the main process died), SIGABRT (an
/// `assert` in libfcgi), and a worker killed while it replays another's journal. Every request
/// carries a user agent of its own, so the tests check that each visit that got a `200` is in the
/// database exactly once, not only that the totals add up.
@Suite(.serialized, .tags(.nginx))
struct CrashTests {
    /// Every answered visit (a whole `200`) is in `visitors` once, no visit is written twice, and the
    /// totals agree with the rows. Answers how many visits are stored.
    ///
    /// Two ways to count a request twice are told apart: the same recording written twice (one time, two
    /// rows), and a request recorded twice (two times). The second is what a worker killed after it
    /// recorded a visit would cause if nginx then sent the request to another worker; a worker records a
    /// visit only once its header is on its way, after which nginx tries no other (FastCGIWorkerTests).
    @discardableResult
    static func expectEachAnsweredVisitOnce(
        _ stack: LocalStack, _ result: LoadGenerator.Result, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Int {
        let store = try SQLiteStore(path: stack.databasePath)
        let (agents, writtenTwice, retried) = try store.read { db in
            (
                try String.fetchAll(db, sql: "SELECT user_agent FROM visitors WHERE user_agent LIKE '% load/%'"),
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM (SELECT 1 FROM visitors GROUP BY user_agent, timestamp HAVING count(*) > 1)") ?? -1,
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM (SELECT user_agent FROM visitors GROUP BY user_agent HAVING count(*) > 1)") ?? -1
            )
        }
        let stored = Set(agents.compactMap { $0.split(separator: "/").last.flatMap { Int($0) } })
        let lost = result.answeredTickets.subtracting(stored)
        #expect(writtenTwice == 0, "visits written twice", sourceLocation: sourceLocation)
        #expect(retried == 0, "\(retried) requests recorded twice", sourceLocation: sourceLocation)
        #expect(lost.count == 0, "answered visits lost, such as \(lost.sorted().prefix(10))", sourceLocation: sourceLocation)
        if writtenTwice != 0 || retried != 0 || !lost.isEmpty {
            let sample = try store.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT user_agent, count(*), group_concat(id), group_concat(timestamp) FROM visitors GROUP BY user_agent HAVING count(*) > 1 LIMIT 5")
            }
            print("recorded more than once, such as \(sample)")
            let audit = try AuditLog.read(path: stack.databasePath + ".audit.jsonl")
            print(audit.map { "\($0.time) \($0.worker) \($0.event) \($0.visits) \($0.error ?? "") \($0.action)" }.joined(separator: "\n"))
        }
        // A visit whose answer the kill cut off after its header may be counted or not, as the worker
        // died after or before recording it.
        let cutOffStored = result.cutOffTickets.intersection(stored).count
        print("\(result.cutOffTickets.count) answers cut off, \(cutOffStored) of them counted")
        #expect(stored.count <= result.requests, sourceLocation: sourceLocation)
        let stats = try store.stats()
        #expect(stats.totalVisitors == agents.count, sourceLocation: sourceLocation)
        #expect(stats.countries.values.reduce(0, +) == agents.count, sourceLocation: sourceLocation)
        try SQLiteStoreTests.expectInvariant(store, sourceLocation: sourceLocation)
        return agents.count
    }

    /// Waits until no journal is left with visits to write: the counter has stopped and the only
    /// journals left are empty, or none at all.
    static func journals(_ stack: LocalStack) throws -> [String] {
        try VisitJournal.all(database: stack.databasePath)
    }

    @Test func aWorkerKilledFiveTimesUnderLoadLosesNoAnsweredVisit() async throws {
        let stack = try await LocalStack(.init(workers: 2, extraArguments: ["--batch-size", "100"]))
        let load = LoadGenerator(stack, uniqueAgents: true)
        load.start()
        // On a failure, stop the clients first: they hold the stack, whose processes would outlive the test.
        defer { load.cancel() }
        var killed: [Int32] = []
        for round in 1...5 {
            // Each kill comes with visits in flight: 200 more answered since the last one, however slow
            // the machine.
            try await stack.waitFor("200 more answers before kill \(round)", seconds: 60) { load.ok >= 200 * round }
            let workers = stack.workerPIDs()
            let victim = try #require(workers.randomElement())
            kill(victim, SIGKILL)
            killed.append(victim)
            // The restart waits longer for a worker that keeps dying: up to 8 s by the fifth kill.
            try await stack.waitFor("a new worker", seconds: 30) {
                let now = stack.workerPIDs()
                return now.count == 2 && !now.contains(victim)
            }
        }
        try await stack.waitFor("200 more answers after the last kill", seconds: 60) { load.ok >= 1_200 }
        let result = load.stop()
        #expect(stack.stopCounter() == 0)
        let stored = try Self.expectEachAnsweredVisitOnce(stack, result)
        print("crash SIGKILL x5: \(result.summary); \(result.ok) answered, \(stored) stored, \(result.answeredTickets.count - min(stored, result.answeredTickets.count)) lost")
        #expect(try Self.journals(stack).isEmpty)
    }

    /// SIGABRT, as libfcgi's `assert` raises it when a FastCGI record's params add up to 2^31 bytes.
    /// That record no longer reaches libfcgi (the worker checks the lengths first: ConnectionTests),
    /// so the signal is sent with `kill`. Swift's backtracer would catch it, print the threads and let
    /// the process go on, answering nothing; the counter starts its workers with the backtracer off
    /// (`SWIFT_BACKTRACE=enable=no`, unless the environment sets it, which this test's does not), so
    /// the signal's default action ends the worker as an `abort()` would.
    @Test func anAbortedWorkerLosesNoAnsweredVisit() async throws {
        #expect(ProcessInfo.processInfo.environment["SWIFT_BACKTRACE"] == nil, "the test's environment sets SWIFT_BACKTRACE")
        let stack = try await LocalStack(.init(workers: 2, extraArguments: ["--batch-size", "100"]))
        let load = LoadGenerator(stack, uniqueAgents: true)
        load.start()
        // On a failure, stop the clients first: they hold the stack, whose processes would outlive the test.
        defer { load.cancel() }
        try await stack.waitFor("300 answers before the abort", seconds: 60) { load.ok >= 300 }
        let before = stack.workerPIDs()
        guard let victim = before.first else { throw TestFailure("no worker to abort") }
        kill(victim, SIGABRT)
        try await stack.waitFor("the aborted worker to be replaced", seconds: 60) {
            let now = stack.workerPIDs()
            return now.count == 2 && !now.contains(victim)
        }
        let answeredAtAbort = load.ok
        try await stack.waitFor("300 more answers after the abort", seconds: 60) { load.ok >= answeredAtAbort + 300 }
        let result = load.stop()
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("worker.status=signal 6"), "the worker was to end by SIGABRT")
        let stored = try Self.expectEachAnsweredVisitOnce(stack, result)
        print("crash abort: \(result.summary); \(result.ok) answered, \(stored) stored")
    }

    /// An upgrade replaces the executable while the service runs; a worker that dies afterwards is
    /// replaced by the build the main process runs, not the new file. Meanwhile the health check
    /// answers 503 and names the missing worker.
    @Test func aReplacedWorkerRunsTheMainProcesssBuildAndHealthNamesItWhileItIsDown() async throws {
        let stack = try await LocalStack(.init(workers: 2, ownExecutable: true))
        let path = stack.directory.path("visitor-counter")
        // The "upgrade": a new file under the same name, which would fail as a worker.
        let upgrade = stack.directory.path("upgrade")
        try "#!/bin/sh\necho 'not the build serve runs' >&2\nexit 3\n".write(toFile: upgrade, atomically: false, encoding: .utf8)
        chmod(upgrade, 0o755)
        #expect(rename(upgrade, path) == 0)
        try await stack.waitFor("every worker to publish its figures") { try stack.health().status == 200 }

        let victim = try #require(stack.workerPIDs().min())
        let index = try #require(
            (try stack.health().json["workers"] as? [[String: Any]])?.first { $0["pid"] as? Int == Int(victim) }?["worker"] as? Int)
        kill(victim, SIGKILL)
        var down: [Int]?
        try await stack.waitFor("the health check to name the dead worker") {
            let health = try stack.health()
            down = health.json["workers_down"] as? [Int]
            return health.status == 503 && down == [index]
        }
        try await stack.waitFor("a new worker", seconds: 30) { stack.workerPIDs().count == 2 && !stack.workerPIDs().contains(victim) }
        try await stack.waitFor("the health check to pass again") { try stack.health().status == 200 }
        for pid in stack.workerPIDs() {
            let running = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            #expect(running.hasSuffix("(deleted)"), "worker \(pid) runs \(running), not the build serve started with")
        }
        #expect(try stack.request("GET", "/").status == 200)
        #expect(stack.stopCounter() == 0)
        #expect(!stack.counter.stderr.contains("not the build serve runs"))
    }

    @Test func theWholeServiceKilledAtOnceLosesNothingAndCountsNothingTwiceAfterARestart() async throws {
        let stack = try await LocalStack(.init(workers: 2, extraArguments: ["--batch-size", "100"], inheritSocket: true))
        let load = LoadGenerator(stack, uniqueAgents: true)
        load.start()
        // On a failure, stop the clients first: they hold the stack, whose processes would outlive the test.
        defer { load.cancel() }
        try await Task.sleep(for: .microseconds(1_500_000))
        // What systemd does when the main process dies (KillMode=mixed): SIGKILL to every process left.
        let everyone = [stack.counter.process.processIdentifier] + Array(stack.workerPIDs())
        for pid in everyone { kill(pid, SIGKILL) }
        stack.counter.process.waitUntilExit()
        try await Task.sleep(for: .microseconds(300_000))
        let leftBehind = try Self.journals(stack)
        #expect(leftBehind.count == 2, "each killed worker leaves its journal: \(leftBehind)")
        // The same options again; requests meanwhile wait in the socket's queue.
        try await stack.restartCounter()
        try await Task.sleep(for: .microseconds(1_000_000))
        let result = load.stop()
        try await stack.waitFor("the killed workers' journals to be written") {
            try Self.journals(stack).allSatisfy { !leftBehind.contains($0) }
        }
        #expect(stack.stopCounter() == 0)
        let stored = try Self.expectEachAnsweredVisitOnce(stack, result)
        print("crash whole service: \(result.summary); \(result.ok) answered, \(stored) stored")
        #expect(try Self.journals(stack).isEmpty)
    }

    @Test func aWorkerKilledDuringAReplayAndAgainDuringTheNextWritesEachVisitOnce() async throws {
        // One worker, small batches: a replay of 20,000 visits takes 2,000 transactions, long enough to
        // be caught half-way on a loaded machine.
        let stack = try await LocalStack(.init(workers: 1, extraArguments: ["--batch-size", "10"]))
        let lock = try SQLiteWriteLock(stack.databasePath)
        let load = LoadGenerator(stack, clients: 4, limit: 20_000, uniqueAgents: true)
        load.start()
        // On a failure, stop the clients first: they hold the stack, whose processes would outlive the test.
        defer { load.cancel() }
        let result = load.stop()
        #expect(result.ok == 20_000, "\(result.summary)")
        // Nothing is written while the lock is held: every visit is in the worker's journal.
        let first = try #require(stack.workerPIDs().first)
        kill(first, SIGKILL)
        try lock.release()
        let store = try SQLiteStore(path: stack.databasePath)
        var killedAt: [Int] = []
        for round in 0..<2 {
            // The new worker replays the dead one's journal: kill it once the replay has begun.
            var total = 0
            try await stack.waitFor("replay \(round + 1) to begin", seconds: 30) {
                total = try store.stats().totalVisitors
                return total > (killedAt.last ?? 0)
            }
            let replaying = try #require(stack.workerPIDs().first)
            kill(replaying, SIGKILL)
            let after = try store.stats().totalVisitors
            killedAt.append(after)
            #expect(after < 20_000, "replay \(round + 1) ended before the kill: the test did not cut it short")
        }
        try await stack.waitFor("the last replay", seconds: 60) { try store.stats().totalVisitors == 20_000 && Self.journals(stack).count == 1 }
        #expect(stack.stopCounter() == 0)
        try Self.expectEachAnsweredVisitOnce(stack, result)
        print("crash during replay: 20,000 visits, replays killed at \(killedAt) written, then all written once")
        let events = try AuditLog.read(path: stack.databasePath + ".audit.jsonl").map(\.event)
        #expect(events.filter { $0 == "journal_replayed" }.count >= 1)
    }
}
