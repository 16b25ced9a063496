import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// A failover under load: a primary with a streaming standby (two throw-away clusters, ``PostgresCluster``),
/// one `serve` behind nginx writing through a URI that names both hosts with
/// `target_session_attrs=read-write`, the primary killed with SIGKILL (the server and all its processes
/// at once, as a host losing power), the standby promoted, and the load going on throughout.
///
/// Synchronous replication uses `synchronous_commit = on`: a commit is answered once the standby has
/// flushed its WAL, and a promotion replays everything flushed before it takes writes, so every batch
/// the writer saw committed is on the new primary. `remote_apply` would also wait for the standby to
/// replay it, which only reads on the standby need, at the cost of a longer wait per batch.
///
/// Each test prints one line with what it measured.
@Suite(.serialized, .tags(.postgres, .nginx))
struct PostgresFailoverTests {
    /// What one failover left: the load's result and, per user agent of the load, the rows stored.
    struct Outcome {
        var load: LoadGenerator.Result
        var answeredBeforeKill: Int
        /// Rows per user agent of the load (`… load/N`) on the new primary.
        var rowsPerAgent: [String: Int]
        var total: Int
        var rows: Int
        var withoutRows: Int
        var deleted: Int
        var countries: Int
        /// Visits still held by the workers when the test stopped waiting for them to be written.
        var stillHeld: Int
        var events: [AuditLog.Entry]
        /// Rows on the primary just before the kill, and on the standby just after its promotion: their
        /// difference is about what the standby had not received (commits between the count and the
        /// kill add to it, a batch written between the promotion and the count takes from it).
        var rowsBeforeKill = 0
        var rowsAtPromotion = 0
        /// Commits the standby had and whose answers were lost, with `unansweredCommits`.
        var unansweredCommits = 0

        /// Answered visits that are not in the database.
        var lost: [Int] { load.answeredTickets.filter { rowsPerAgent[LoadGenerator.agent($0)] == nil }.sorted() }
        /// Visits in the database more than once.
        var twice: [String] { rowsPerAgent.filter { $0.value > 1 }.keys.sorted() }
    }

    /// The URI that names both clusters' sockets, in the primary-first order an operator writes them.
    static func uri(_ clusters: [PostgresCluster]) -> String {
        "postgresql:///postgres?host=\(clusters.map(\.socketDirectory).joined(separator: ","))"
            + "&port=\(clusters.map { String($0.port) }.joined(separator: ","))&user=postgres&target_session_attrs=read-write"
    }

    /// Waits until the primary behind `connection` streams to its standby as `state` (`sync`, `async`):
    /// before that, a synchronous primary's commits would wait, and an asynchronous one's would not be
    /// on the standby at all.
    static func waitUntilStreaming(_ connection: PostgresConnection, as state: String) async throws {
        for _ in 0..<600 {
            let rows = try connection.execute("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'").rows
            if rows.first?[0] == state { return }
            try await Task.sleep(for: .microseconds(100_000))
        }
        throw TestFailure("the standby was not streaming as \(state) within 60 s")
    }

    /// Runs the failover and reads what the new primary holds. `writtenWithin` bounds the wait for the
    /// workers' buffers to empty after the load.
    ///
    /// `standbyBehind` holds up the standby's WAL receiver (SIGSTOP) for that long before the kill, and
    /// until the primary has committed a batch since, as a slow link would: an asynchronous primary goes
    /// on committing what the standby has not received.
    ///
    /// `unansweredCommits` (synchronous only) kills the primary at the worst moment: with commits that
    /// the standby has and whose answers never left the primary (``PostgresCluster/freezeWithUnansweredCommits(standby:after:)``).
    static func failover(
        synchronous: Bool, standbyBehind: TimeInterval = 0, unansweredCommits: Bool = false,
        serveArguments: [String] = [], writtenWithin seconds: Int
    ) async throws -> Outcome {
        let primary = try await PostgresCluster(
            settings: synchronous ? ["synchronous_standby_names=*", "synchronous_commit=on"] : [])
        let standby = try await PostgresCluster(standbyOf: primary)
        let watch = try PostgresConnection(uri: primary.uri())
        try await waitUntilStreaming(watch, as: synchronous ? "sync" : "async")

        let stateDirectory = try TemporaryDirectory()
        let stack = try await LocalStack(
            .init(
                workers: 2, extraArguments: ["--state-directory", stateDirectory.url.path] + serveArguments,
                database: uri([primary, standby])))
        let load = LoadGenerator(stack, clients: 4, uniqueAgents: true)
        load.start()
        defer { load.cancel() }
        try await Task.sleep(for: .seconds(4))
        if standbyBehind > 0 {
            try standby.signalWALReceiver(SIGSTOP)
            let rowsAtHoldUp = try watch.execute("SELECT count(*) FROM visitors").firstInteger ?? -1
            try await Task.sleep(for: .seconds(standbyBehind))
            // On a loaded machine no batch may have been committed yet: hold on until one has.
            for _ in 0..<300 where try watch.execute("SELECT count(*) FROM visitors").firstInteger ?? -1 <= rowsAtHoldUp {
                try await Task.sleep(for: .microseconds(100_000))
            }
        }
        let answeredBeforeKill = load.ok
        let rowsBeforeKill = try watch.execute("SELECT count(*) FROM visitors").firstInteger ?? -1
        let unanswered = unansweredCommits ? try await primary.freezeWithUnansweredCommits(standby: standby, after: 3) : 0
        primary.crash()
        if standbyBehind > 0 { try standby.signalWALReceiver(SIGCONT) }
        try await Task.sleep(for: .seconds(1))
        try standby.promote()
        // Before the writers' next batch: they retry every few hundred milliseconds at first.
        let rowsAtPromotion = try PostgresConnection(uri: standby.uri()).execute("SELECT count(*) FROM visitors").firstInteger ?? -1
        try await Task.sleep(for: .seconds(5))
        let result = load.stop()
        var outcome = try await read(standby, load: result, answeredBeforeKill: answeredBeforeKill, stack: stack, within: seconds)
        (outcome.rowsBeforeKill, outcome.rowsAtPromotion) = (rowsBeforeKill, rowsAtPromotion)
        outcome.unansweredCommits = unanswered
        outcome.events = try AuditLog.read(path: stateDirectory.path("postgresql.audit.jsonl"))
        #expect(stack.stopCounter() == 0)
        return outcome
    }

    /// Waits up to `seconds` for the workers to hold no visit, then reads what `cluster` holds.
    static func read(
        _ cluster: PostgresCluster, load: LoadGenerator.Result, answeredBeforeKill: Int, stack: LocalStack, within seconds: Int
    ) async throws -> Outcome {
        var stillHeld = try stack.healthSum("buffered_visits")
        for _ in 0..<(seconds * 4) where stillHeld > 0 {
            try await Task.sleep(for: .microseconds(250_000))
            stillHeld = try stack.healthSum("buffered_visits")
        }
        let connection = try PostgresConnection(uri: cluster.uri())
        let stats = try connection.execute("SELECT total_visitors, visitors_without_rows, visitors_deleted FROM visitor_stats").rows
        let figures = stats.first.map { $0.map { Int($0 ?? "") ?? -1 } } ?? [-1, -1, -1]
        let agents = try connection.execute("SELECT user_agent, count(*) FROM visitors GROUP BY 1").rows
        return Outcome(
            load: load, answeredBeforeKill: answeredBeforeKill,
            rowsPerAgent: Dictionary(uniqueKeysWithValues: agents.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) }),
            total: figures[0], rows: try connection.execute("SELECT count(*) FROM visitors").firstInteger ?? -1,
            withoutRows: figures[1], deleted: figures[2],
            countries: try connection.execute("SELECT coalesce(sum(visitors), 0) FROM visitor_countries").firstInteger ?? -1,
            stillHeld: stillHeld, events: [])
    }

    @Test func aFailoverWithASynchronousStandbyLosesNothingAndCountsNothingTwice() async throws {
        let outcome = try await Self.failover(synchronous: true, writtenWithin: 120)
        let answered = outcome.load.ok
        print(
            "failover, synchronous standby: \(outcome.load.summary); \(outcome.answeredBeforeKill) answered before the kill; "
                + "rows \(outcome.rowsBeforeKill) on the primary before the kill, \(outcome.rowsAtPromotion) on the promoted standby; "
                + "\(outcome.rows) rows in the end, \(outcome.lost.count) answered visits missing, \(outcome.twice.count) twice")
        #expect(outcome.load.ok == outcome.load.requests, "\(outcome.load.summary)")
        #expect(outcome.answeredBeforeKill > 0)
        #expect(answered > outcome.answeredBeforeKill, "the load went on after the kill")
        #expect(outcome.stillHeld == 0)
        #expect(outcome.lost.isEmpty, "answered and not stored: \(outcome.lost.prefix(20))")
        #expect(outcome.twice.isEmpty, "stored twice: \(outcome.twice.prefix(20))")
        #expect(outcome.total == answered)
        #expect(outcome.rows == answered)
        #expect(outcome.total == outcome.rows + outcome.withoutRows + outcome.deleted)
        #expect(outcome.countries == answered)
        // The writers did meet the failover: a write failed, and a later one got through.
        #expect(outcome.events.contains { $0.event == "write_failed" })
        #expect(outcome.events.contains { $0.event == "write_recovered" })
    }

    /// The primary killed while the writers' commits were on the standby and their answers still on the
    /// primary: each retried batch is found written on the new primary (its journal's progress came
    /// with it) and skipped, so nothing is counted twice; the standby had every answered one.
    ///
    /// Batches large enough that the timer closes them all, part-full, as on a quiet site: visits that
    /// came while a batch was being retried could have joined it, and its retry would then be refused
    /// for ever as a gap in its journal (which this test caught before ``VisitBuffer`` kept tried
    /// batches as they were).
    @Test func commitsWhoseAnswersTheKillLostAreCountedOnce() async throws {
        let outcome = try await Self.failover(
            synchronous: true, unansweredCommits: true, serveArguments: ["--batch-size", "50000"], writtenWithin: 120)
        let answered = outcome.load.ok
        print(
            "failover, synchronous standby, \(outcome.unansweredCommits) commits on the standby unanswered at the kill: "
                + "\(outcome.load.summary); rows \(outcome.rowsBeforeKill) visible on the primary before the freeze, "
                + "\(outcome.rowsAtPromotion) on the promoted standby; \(outcome.rows) rows in the end, "
                + "\(outcome.lost.count) answered visits missing, \(outcome.twice.count) twice, \(outcome.stillHeld) still held")
        #expect(outcome.unansweredCommits > 0, "the freeze caught no commit in flight")
        #expect(outcome.rowsAtPromotion > outcome.rowsBeforeKill, "the unanswered commits are on the standby")
        #expect(outcome.load.ok == outcome.load.requests, "\(outcome.load.summary)")
        #expect(outcome.stillHeld == 0)
        #expect(outcome.lost.isEmpty, "answered and not stored: \(outcome.lost.prefix(20))")
        #expect(outcome.twice.isEmpty, "stored twice: \(outcome.twice.prefix(20))")
        #expect(outcome.total == answered)
        #expect(outcome.rows == answered)
        #expect(outcome.countries == answered)
    }
}

extension PostgresFailoverTests {
    /// With asynchronous replication, the commits that the standby had not received at the kill are
    /// lost to the database: measured and reported, not a fixed figure. Each writer finds its journal's
    /// progress behind its next batch, writes the lost part again from its journal, and goes on: every
    /// answered visit is there once, without a restart, and the figures agree with each other.
    @Test func anAsynchronousFailoverLosesNothingTheJournalsStillHold() async throws {
        let outcome = try await Self.failover(synchronous: false, standbyBehind: 2, writtenWithin: 20)
        let rewritten = outcome.events.filter { $0.event == AuditLog.Event.lostBatchesRewritten.rawValue }
        print(
            "failover, asynchronous standby 2 s behind: \(outcome.load.summary); \(outcome.answeredBeforeKill) answered before the kill; "
                + "rows \(outcome.rowsBeforeKill) on the primary before the kill, \(outcome.rowsAtPromotion) on the promoted standby; "
                + "\(rewritten.map(\.visits).reduce(0, +)) visits written again from \(rewritten.count) journal(s); "
                + "\(outcome.lost.count) answered visits missing, \(outcome.twice.count) twice, \(outcome.stillHeld) still held")
        #expect(outcome.rowsAtPromotion < outcome.rowsBeforeKill, "the standby held up lacked commits")
        #expect(!rewritten.isEmpty, "no writer wrote lost batches again")
        #expect(outcome.lost.isEmpty, "answered and not stored: \(outcome.lost.prefix(20))")
        #expect(outcome.twice.isEmpty, "stored twice: \(outcome.twice.prefix(20))")
        #expect(outcome.total == outcome.load.ok)
        #expect(outcome.total == outcome.rows + outcome.withoutRows + outcome.deleted)
        #expect(outcome.countries == outcome.total)
    }
}

extension PostgresFailoverTests {
    /// The price of synchronous replication: with the standby stopped, every commit waits for it. The
    /// requests are still answered, the workers hold the visits, and health answers 503 once a visit
    /// has waited past `--health-threshold`; when the standby is back, the waiting commits finish and
    /// every answered visit is stored once.
    @Test func aSynchronousPrimaryWaitsWhileItsStandbyIsDownAndHealthSaysSo() async throws {
        let primary = try await PostgresCluster(settings: ["synchronous_standby_names=*", "synchronous_commit=on"])
        let standby = try await PostgresCluster(standbyOf: primary)
        let watch = try PostgresConnection(uri: primary.uri())
        try await Self.waitUntilStreaming(watch, as: "sync")
        let stateDirectory = try TemporaryDirectory()
        let stack = try await LocalStack(
            .init(
                workers: 2, extraArguments: ["--state-directory", stateDirectory.url.path, "--health-threshold", "5"],
                database: Self.uri([primary, standby])))
        let load = LoadGenerator(stack, clients: 3, uniqueAgents: true)
        load.start()
        defer { load.cancel() }
        try await Task.sleep(for: .seconds(2))
        try standby.stop(mode: .fast)
        let rowsWhenStopped = try watch.execute("SELECT count(*) FROM visitors").firstInteger ?? -1
        try await Task.sleep(for: .seconds(8))
        let health = try stack.health()
        let held = try stack.healthSum("buffered_visits")
        // Commits flushed on the primary that wait for the standby before they are visible or answered.
        let waiting = try watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").firstInteger ?? -1
        try await standby.start()
        try await Task.sleep(for: .seconds(2))
        let result = load.stop()
        try await stack.waitFor("every visit written", seconds: 120) { try stack.healthSum("buffered_visits") == 0 }
        print(
            "synchronous standby stopped 8 s: \(result.summary); \(held) visits held and \(waiting) commits waiting for the standby; "
                + "health \(health.status), reasons \(health.json["reasons"] ?? [])")
        #expect(result.ok == result.requests, "\(result.summary)")
        #expect(rowsWhenStopped > 0)
        #expect(held > 0)
        #expect(waiting > 0)
        #expect(health.status == 503)
        let connection = try PostgresConnection(uri: primary.uri())
        #expect(try connection.execute("SELECT total_visitors FROM visitor_stats").firstInteger == result.ok)
        #expect(try connection.execute("SELECT count(*) FROM visitors").firstInteger == result.ok)
        let agents = try connection.execute("SELECT count(DISTINCT user_agent) FROM visitors").firstInteger
        #expect(agents == result.answeredTickets.count)
        #expect(stack.stopCounter() == 0)
    }
}
