import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Several hosts sharing one PostgreSQL database: each "host" is a `serve` behind its own nginx, with a
/// state directory of its own, all writing into one throw-away cluster (``PostgresCluster``).
///
/// Each test prints one line with what it measured.
@Suite(.serialized, .tags(.postgres, .nginx))
struct PostgresHostsTests {
    /// A host: its state directory and its counter behind nginx, writing into `cluster`.
    static func host(_ cluster: PostgresCluster, workers: Int = 2) async throws -> (stack: LocalStack, state: TemporaryDirectory) {
        let state = try TemporaryDirectory()
        let stack = try await LocalStack(
            .init(workers: workers, extraArguments: ["--state-directory", state.url.path], database: cluster.uri()))
        return (stack, state)
    }

    /// Waits until the host holds no unwritten visit.
    static func waitUntilWritten(_ stack: LocalStack, seconds: Double = 60) async throws {
        try await stack.waitFor("every visit written", seconds: seconds) { try stack.healthSum("buffered_visits") == 0 }
    }

    @Test func twoHostsCountExactlyAndTheSameVisitorOnce() async throws {
        let cluster = try await PostgresCluster()
        let (first, firstState) = try await Self.host(cluster)
        let (second, secondState) = try await Self.host(cluster)
        defer { withExtendedLifetime((firstState, secondState)) {} }
        let loads = [LoadGenerator(first, clients: 4), LoadGenerator(second, clients: 4)]
        loads.forEach { $0.start() }
        defer { loads.forEach { $0.cancel() } }
        try await Task.sleep(for: .seconds(8))
        let results = loads.map { $0.stop() }
        // The same 50 visitors (address and user agent) through both hosts, one after the other.
        for stack in [first, second] {
            for visitor in 0..<50 {
                let response = try stack.request(
                    "GET", "/", headers: ["X-Forwarded-For": "81.2.69.142", "User-Agent": "\(LocalStack.browser) visitor/\(visitor)"])
                #expect(response.status == 200)
            }
        }
        for stack in [first, second] { try await Self.waitUntilWritten(stack) }
        let answered = results.map(\.ok).reduce(0, +) + 100
        print("two hosts: \(results[0].summary); \(results[1].summary)")
        #expect(results.allSatisfy { $0.ok == $0.requests && $0.ok > 100 }, "\(results.map(\.summary))")

        let store = try PostgresStore(uri: cluster.uri(), stateDirectory: firstState.url.path)
        let figures = try store.stats()
        #expect(figures.totalVisitors == answered)
        #expect(try store.visitorRowCount() == answered)
        #expect(figures.countries.values.reduce(0, +) == answered)
        // The load's visitors: its six addresses with one browser, seen through both hosts; and the 50.
        #expect(figures.uniqueVisitorsToday == LoadGenerator.addresses.count + 50)
        let today = try store.daily(from: UTCTimestamp.day(Date()), to: UTCTimestamp.day(Date()))
        #expect(today.first?.visitors == answered)
        #expect(today.first?.countries == figures.countries)
        let connection = try PostgresConnection(uri: cluster.uri())
        let rowsByCountry = try connection.execute("SELECT country_code, count(*) FROM visitors GROUP BY 1").rows
        #expect(Dictionary(uniqueKeysWithValues: rowsByCountry.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) }) == figures.countries)
        #expect(try connection.execute("SELECT count(*) FROM daily_uniques").firstInteger == LoadGenerator.addresses.count + 50)
        // The commands take the URI too.
        let commands = try TemporaryDirectory()
        let export = try ChildProcess(try visitorCounterExecutable(), ["export", "--database", cluster.uri()], in: commands, name: "export")
        #expect(export.wait() == 0, "\(export.stderr)")
        #expect(export.stdout.split(separator: "\n").count == answered + 1)
        let daily = try ChildProcess(
            try visitorCounterExecutable(), ["export", "--daily", "--format", "json", "--database", cluster.uri()], in: commands,
            name: "export-daily")
        #expect(daily.wait() == 0, "\(daily.stderr)")
        #expect(daily.stdout.contains("\"visitors\": \(answered), \"unique_visitors\": \(LoadGenerator.addresses.count + 50)"))
        let stats = try ChildProcess(try visitorCounterExecutable(), ["stats", "--database", cluster.uri()], in: commands, name: "stats")
        #expect(stats.wait() == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains("\"total_visitors\": \(answered),"))
        let audit = try ChildProcess(
            try visitorCounterExecutable(), ["audit", "--database", cluster.uri(), "--state-directory", firstState.url.path],
            in: commands, name: "audit")
        #expect(audit.wait() == 0, "\(audit.stderr)")
        #expect(audit.stdout.contains("no audit log at \(firstState.path("postgresql.audit.jsonl"))"))
        #expect(first.stopCounter() == 0)
        #expect(second.stopCounter() == 0)
    }

    @Test func eightProcessesStartingAtOnceMakeTheSchemaOnce() async throws {
        let cluster = try await PostgresCluster()
        let directory = try TemporaryDirectory()
        let children = try (0..<8).map { index in
            try ChildProcess(
                try visitorCounterExecutable(), ["stats", "--database", cluster.uri()], in: directory, name: "stats-\(index)")
        }
        for child in children {
            #expect(child.wait() == 0, "\(child.stderr)")
            #expect(child.stdout.contains("\"total_visitors\": 0,"))
        }
        let connection = try PostgresConnection(uri: cluster.uri())
        #expect(
            try connection.execute("SELECT version FROM schema_migrations ORDER BY version").rows
                == (1...PostgresStore.schemaVersion).map { [String($0)] })
        #expect(try connection.execute("SELECT count(*) FROM visitor_stats").firstInteger == 1)
        #expect(
            try connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").firstInteger == 16)
        // `stats` takes the database's zone and records none: the first counter to serve it does.
        #expect(children.allSatisfy { $0.stdout.contains("\"time_zone\": \"UTC\",") })
        #expect(try connection.execute("SELECT count(*) FROM settings").firstInteger == 0)
    }

    /// PostgreSQL restarted, then stopped for 5 s, while two hosts are under load: every request is
    /// answered, and every answered visit is in the database exactly once.
    @Test func aRestartAndFiveSecondsWithoutPostgreSQLLoseNothingAndCountNothingTwice() async throws {
        let cluster = try await PostgresCluster()
        let (first, firstState) = try await Self.host(cluster)
        let (second, secondState) = try await Self.host(cluster)
        defer { withExtendedLifetime((firstState, secondState)) {} }
        let loads = [LoadGenerator(first, clients: 3, uniqueAgents: true), LoadGenerator(second, clients: 3, uniqueAgents: true)]
        loads.forEach { $0.start() }
        defer { loads.forEach { $0.cancel() } }
        try await Task.sleep(for: .seconds(2))
        try cluster.stop(mode: .fast)
        try await cluster.start()
        try await Task.sleep(for: .seconds(2))
        try cluster.stop(mode: .immediate)
        try await Task.sleep(for: .seconds(5))
        let heldWhileDown = try first.healthSum("buffered_visits") + second.healthSum("buffered_visits")
        try await cluster.start()
        try await Task.sleep(for: .seconds(2))
        let results = loads.map { $0.stop() }
        for stack in [first, second] { try await Self.waitUntilWritten(stack) }
        print("postgres restart and 5 s stop: \(results[0].summary); \(results[1].summary); held while down: \(heldWhileDown)")
        #expect(results.allSatisfy { $0.ok == $0.requests }, "\(results.map(\.summary))")
        #expect(heldWhileDown > 0)

        // Both hosts' tickets are numbered from 1: tell them apart by host in the user agent's place.
        let connection = try PostgresConnection(uri: cluster.uri())
        let answered = results.map(\.ok).reduce(0, +)
        #expect(try connection.execute("SELECT total_visitors FROM visitor_stats").firstInteger == answered)
        #expect(try connection.execute("SELECT count(*) FROM visitors").firstInteger == answered)
        #expect(try connection.execute("SELECT coalesce(sum(visitors), 0) FROM visitor_countries").firstInteger == answered)
        let agents = try connection.execute("SELECT user_agent, count(*) FROM visitors GROUP BY 1").rows
        let perAgent = Dictionary(uniqueKeysWithValues: agents.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) })
        // Each ticket number was sent by both hosts' clients, so it is there once per host that answered it.
        for ticket in results[0].answeredTickets.union(results[1].answeredTickets) {
            let expected = (results[0].answeredTickets.contains(ticket) ? 1 : 0) + (results[1].answeredTickets.contains(ticket) ? 1 : 0)
            #expect(perAgent[LoadGenerator.agent(ticket)] == expected, "ticket \(ticket)")
        }
        let events = try AuditLog.read(path: firstState.path("postgresql.audit.jsonl"))
        #expect(events.contains { $0.event == "write_failed" })
        #expect(first.stopCounter() == 0)
        #expect(second.stopCounter() == 0)
    }
}
