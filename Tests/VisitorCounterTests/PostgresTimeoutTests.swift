import Foundation
import Synchronization
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Connections that notice a server gone without a word, and a daily route that never queues behind a
/// read that is stuck: against a cluster of the suite's own that listens on TCP (127.0.0.1), where
/// keepalives and `tcp_user_timeout` apply.
@Suite(.serialized, .tags(.postgres)) final class PostgresTimeoutTests {
    let cluster: PostgresCluster
    let directory: TemporaryDirectory

    init() async throws {
        cluster = try await PostgresCluster(settings: ["listen_addresses=127.0.0.1"])
        directory = try TemporaryDirectory()
    }

    /// A URI for `database` over TCP, with `query` added.
    private func tcpURI(_ database: String = "postgres", _ query: String = "") -> String {
        "postgresql://postgres@127.0.0.1:\(cluster.port)/\(database)" + (query.isEmpty ? "" : "?\(query)")
    }

    /// What the kernel and the server have of a connection's settings.
    private struct Settings: Equatable, CustomStringConvertible {
        var keepalive: Int32
        var idle: Int32
        var interval: Int32
        var count: Int32
        var userTimeout: Int32
        var statementTimeout: String

        var description: String {
            "keepalive \(keepalive) idle \(idle) interval \(interval) count \(count) user timeout \(userTimeout) ms, statement_timeout \(statementTimeout)"
        }
    }

    private func settings(of connection: PostgresConnection) throws -> Settings {
        func option(_ level: Int32, _ name: Int32) throws -> Int32 {
            var value: Int32 = -1
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(connection.socket, level, name, &value, &length) == 0 else {
                throw TestFailure("getsockopt \(level) \(name): errno \(errno)")
            }
            return value
        }
        let tcp = Int32(IPPROTO_TCP)
        return Settings(
            keepalive: try option(SOL_SOCKET, SO_KEEPALIVE), idle: try option(tcp, TCP_KEEPIDLE),
            interval: try option(tcp, TCP_KEEPINTVL), count: try option(tcp, TCP_KEEPCNT),
            userTimeout: try option(tcp, 18 /* TCP_USER_TIMEOUT */),
            statementTimeout: try connection.execute("SHOW statement_timeout").rows.first?.first.flatMap { $0 } ?? "")
    }

    @Test func everyConnectionOfTheStoreHasTheDefaults() throws {
        let store = try PostgresStore(uri: tcpURI(), stateDirectory: directory.url.path)
        let expected = Settings(keepalive: 1, idle: 10, interval: 5, count: 3, userTimeout: 30_000, statementTimeout: "30s")
        #expect(try store.onWriter { try settings(of: $0) } == expected)
        #expect(try store.onReader { try settings(of: $0) } == expected)
        #expect(try store.onRequestThread { try settings(of: $0) } == expected)
        // The migrations' transaction went without it, and left the session's own as it was.
        #expect(try store.onWriter { try $0.execute("SELECT count(*) FROM schema_migrations").firstInteger } == PostgresStore.schemaVersion)
    }

    @Test func whatTheURIOrTheServerSetsWins() throws {
        let uri = tcpURI("postgres", "keepalives_idle=42&tcp_user_timeout=7000&options=-c%20statement_timeout%3D5s")
        let connection = try PostgresConnection(uri: uri)
        #expect(try settings(of: connection) == Settings(keepalive: 1, idle: 42, interval: 5, count: 3, userTimeout: 7000, statementTimeout: "5s"))

        let admin = try PostgresConnection(uri: cluster.uri())
        try admin.execute("CREATE DATABASE slow")
        try admin.execute("ALTER DATABASE slow SET statement_timeout = '7min'")
        #expect(try settings(of: PostgresConnection(uri: tcpURI("slow"))).statementTimeout == "7min")
        // Keepalives off in the URI: libpq leaves the socket without them.
        #expect(try settings(of: PostgresConnection(uri: tcpURI("postgres", "keepalives=0"))).keepalive == 0)
    }

    @Test func theDailyRouteDoesNotQueueBehindAReadThatIsStuck() async throws {
        let store = try PostgresStore(uri: tcpURI(), stateDirectory: directory.url.path)
        let day = UTCTimestamp.day(Date())
        // Another session holds a lock that the daily read waits for, as a server that hangs would; the
        // stats read does not need it (it would wait too, for the 30 s of its statement_timeout).
        let blocker = try PostgresConnection(uri: cluster.uri())
        try blocker.execute("BEGIN")
        try blocker.execute("LOCK TABLE daily_countries IN ACCESS EXCLUSIVE MODE")
        let stuck = DispatchSemaphore(value: 0)
        Thread.start(named: "stuck-daily-read") {
            _ = try? store.daily(from: day, to: day)
            stuck.signal()
        }
        let watch = try PostgresConnection(uri: cluster.uri())
        try await waitUntil("the first daily read waiting for the lock", seconds: 60) {
            try watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").firstInteger == 1
        }
        // A second request thread is answered at once (503 with Retry-After), and the stats cache's reads
        // go on: neither waits for the stuck read. Off this thread, so that a wait fails the test instead
        // of hanging it.
        let answered = DispatchSemaphore(value: 0)
        let outcome = SharedOutcome()
        Thread.start(named: "second-daily-read") {
            do {
                _ = try store.daily(from: day - 1, to: day)
                outcome.set("answered with days")
            } catch let busy as DailyHistory.Busy {
                outcome.set("busy, retry after \(busy.retryAfter) s")
            } catch {
                outcome.set("failed: \(error)")
            }
            do {
                outcome.set(outcome.get() + "; stats \(try store.stats().totalVisitors)")
            } catch {
                outcome.set(outcome.get() + "; stats failed: \(error)")
            }
            answered.signal()
        }
        let inTime = answered.wait(timeout: .now() + 60) == .success
        try blocker.execute("ROLLBACK")
        #expect(stuck.wait(timeout: .now() + 60) == .success)
        #expect(inTime, "the second read waited for the stuck one")
        #expect(outcome.get() == "busy, retry after 1 s; stats 0")
        // Once the stuck read is over, the route reads again.
        #expect(try store.daily(from: day - 1, to: day).count == 2)
    }
}

/// A string set on one thread and read on another.
private final class SharedOutcome: Sendable {
    private let value = Mutex("")
    func set(_ text: String) { value.withLock { $0 = text } }
    func get() -> String { value.withLock { $0 } }
}
