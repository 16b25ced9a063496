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
@Suite(.serialized)
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

    /// Runs the failover and reads what the new primary holds. `writtenWithin` bounds the wait for the
    /// workers' buffers to empty after the load.
    static func failover(synchronous: Bool, writtenWithin seconds: Int) throws -> Outcome {
        let primary = try PostgresCluster(
            settings: synchronous ? ["synchronous_standby_names=*", "synchronous_commit=on"] : [])
        let standby = try PostgresCluster(standbyOf: primary)
        // Until the standby streams, a synchronous primary's commits would wait and an asynchronous
        // one's would not be on the standby at all.
        let expected = synchronous ? "sync" : "async"
        let watch = try PostgresConnection(uri: primary.uri())
        var state = ""
        for _ in 0..<600 where state != expected {
            state = try watch.execute("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'").rows.first?[0] ?? ""
            usleep(100_000)
        }
        guard state == expected else { throw TestFailure("the standby was not streaming as \(expected) within 60 s") }

        let stateDirectory = try TemporaryDirectory()
        let stack = try LocalStack(
            .init(workers: 2, extraArguments: ["--state-directory", stateDirectory.url.path], database: uri([primary, standby])))
        let load = LoadGenerator(stack, clients: 4, uniqueAgents: true)
        load.start()
        defer { load.cancel() }
        Thread.sleep(forTimeInterval: 4)
        let answeredBeforeKill = load.ok
        primary.crash()
        Thread.sleep(forTimeInterval: 1)
        try standby.promote()
        Thread.sleep(forTimeInterval: 5)
        let result = load.stop()
        var stillHeld = try stack.healthSum("buffered_visits")
        for _ in 0..<(seconds * 4) where stillHeld > 0 {
            usleep(250_000)
            stillHeld = try stack.healthSum("buffered_visits")
        }

        let connection = try PostgresConnection(uri: standby.uri())
        let stats = try connection.execute("SELECT total_visitors, visitors_without_rows, visitors_deleted FROM visitor_stats").rows
        let figures = stats.first.map { $0.map { Int($0 ?? "") ?? -1 } } ?? [-1, -1, -1]
        let agents = try connection.execute("SELECT user_agent, count(*) FROM visitors GROUP BY 1").rows
        let events = try AuditLog.read(path: stateDirectory.path("postgresql.audit.jsonl"))
        #expect(stack.stopCounter() == 0)
        return Outcome(
            load: result, answeredBeforeKill: answeredBeforeKill,
            rowsPerAgent: Dictionary(uniqueKeysWithValues: agents.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) }),
            total: figures[0], rows: try connection.execute("SELECT count(*) FROM visitors").firstInteger ?? -1,
            withoutRows: figures[1], deleted: figures[2],
            countries: try connection.execute("SELECT coalesce(sum(visitors), 0) FROM visitor_countries").firstInteger ?? -1,
            stillHeld: stillHeld, events: events)
    }

    @Test func aFailoverWithASynchronousStandbyLosesNothingAndCountsNothingTwice() throws {
        let outcome = try Self.failover(synchronous: true, writtenWithin: 120)
        let answered = outcome.load.ok
        print(
            "failover, synchronous standby: \(outcome.load.summary); \(outcome.answeredBeforeKill) answered before the kill; "
                + "\(outcome.rows) rows on the new primary, \(outcome.lost.count) answered visits missing, \(outcome.twice.count) twice")
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
}
