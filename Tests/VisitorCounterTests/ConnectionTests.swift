import Foundation
import GRDB
import Synchronization
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Connections, signals and peers, through the real nginx and real processes: kept connections cost no
/// thread, stray signals stop nothing, and only allowed peers and sane records reach libfcgi.
@Suite(.serialized, .tags(.nginx))
struct ConnectionTests {
    /// The sockets a process has open (the listening socket included).
    private func openSockets(_ pid: Int32) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return entries.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)"))?.hasPrefix("socket:") == true }
            .count
    }

    /// The visits stored in the stack's database, once the counter has stopped.
    private func storedVisits(_ stack: LocalStack) throws -> Int {
        try SQLiteStore(path: stack.databasePath).stats().totalVisitors
    }

    @Test func keptConnectionsBeyondTheThreadsAreAllAnswered() async throws {
        var options = LocalStack.Options(workers: 1, threads: 2)
        options.nginxKeepalive = 64
        let stack = try await LocalStack(options)
        let worker = try #require(stack.workerPIDs().first)
        let load = LoadGenerator(stack, clients: 32)
        load.start()
        var mostSockets = 0
        let end = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < end {
            mostSockets = max(mostSockets, openSockets(worker))
            try await Task.sleep(for: .microseconds(200_000))
        }
        let result = load.stop()
        #expect(result.requests > 1000, "\(result.summary)")
        #expect(result.errors == 0 && result.statuses.keys.sorted() == [200], "\(result.summary)")
        // A request on a kept connection that no thread read would wait until nginx gave up on it; one
        // slow request among thousands on a loaded machine is a stall, not that.
        #expect(result.p99Latency < 1 && result.maxLatency < 5, "\(result.summary)")
        // The point of the test: nginx held more connections open than the worker has threads.
        #expect(mostSockets - 1 > 2, "the worker held at most \(mostSockets) sockets")
        #expect(stack.stopCounter() == 0)
        let stored = try storedVisits(stack)
        let warnings = stack.counter.stderr.split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }
        #expect(stored == result.ok, "\(stored) stored; \(result.summary); \(warnings)")
    }

    @Test func straySignalsToEveryProcessStopNothingAndLoseNoVisit() async throws {
        let stack = try await LocalStack(workers: 2)
        let main = stack.counter.process.processIdentifier
        let workers = stack.workerPIDs()
        #expect(workers.count == 2)
        let load = LoadGenerator(stack, clients: 8)
        load.start()
        try await Task.sleep(for: .microseconds(500_000))
        for _ in 0..<3 {
            for signal in Signals.ignored {
                for pid in [main] + workers { kill(pid, signal) }
                try await Task.sleep(for: .microseconds(100_000))
            }
        }
        try await Task.sleep(for: .microseconds(500_000))
        let result = load.stop()
        #expect(result.requests > 100, "\(result.summary)")
        #expect(result.errors == 0 && result.statuses.keys.sorted() == [200], "\(result.summary)")
        #expect(stack.workerPIDs() == workers)
        #expect(stack.counter.process.isRunning)
        #expect(try stack.request("GET", "/api/sys/stats").status == 200)
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("signal ignored"))
        #expect(!stack.counter.stderr.contains("worker died"), "\(stack.counter.stderr)")
        #expect(try storedVisits(stack) == result.ok)
    }

    @Test func aParamLengthLibfcgiWouldAbortOnClosesTheConnectionAndTheWorkerLives() async throws {
        let stack = try await LocalStack(workers: 1)
        let workers = stack.workerPIDs()
        var answered = 0
        for _ in 0..<20 where try stack.request("GET", "/").status == 200 { answered += 1 }

        // 2^30 + 2^30 + 2 bytes: libfcgi's int sum overflows, malloc fails and its assert aborts.
        let hostile = FastCGIClient.begin(keep: true)
            + FastCGIClient.record(type: 4, FastCGIClient.length(1 << 30) + FastCGIClient.length(1 << 30) + Array("A".utf8))
        for split in [false, true] {
            let descriptor = try FastCGIClient.connect(unix: stack.socketPath)
            defer { close(descriptor) }
            let bytes = split ? Array(hostile[..<20]) : hostile
            if split {  // the length prefix arrives in two pieces
                _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                try await Task.sleep(for: .microseconds(50_000))
            }
            #expect(try FastCGIClient.exchange(descriptor, split ? Array(hostile[20...]) : bytes) == nil)
        }
        // A good request on a connection of its own still gets its answer from the same worker.
        let descriptor = try FastCGIClient.connect(unix: stack.socketPath)
        defer { close(descriptor) }
        let answer = try #require(try FastCGIClient.exchange(descriptor, FastCGIClient.get("/api/sys/stats")))
        #expect(answer.hasPrefix("Status: 200"))

        for _ in 0..<20 where try stack.request("GET", "/").status == 200 { answered += 1 }
        #expect(answered == 40)
        #expect(stack.workerPIDs() == workers)
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("closed a FastCGI connection before libfcgi read it"))
        #expect(!stack.counter.stderr.contains("worker died"), "\(stack.counter.stderr)")
        #expect(try storedVisits(stack) == answered)
    }

    @Test func aTCPPeerNotOnTheAllowListIsClosedAtAccept() async throws {
        let directory = try TemporaryDirectory()
        let port = try LocalStack.freePort()
        let counter = try ChildProcess(
            try visitorCounterExecutable(),
            [
                "serve", "--listen", "127.0.0.1:\(port)", "--allowed-clients", "127.0.0.2", "--workers", "1",
                "--database", directory.path("visitors.sqlite"),
            ], in: directory, name: "counter")
        defer {
            kill(counter.process.processIdentifier, SIGTERM)
            _ = counter.wait()
        }
        var allowed: String?
        try await waitUntil("the counter on 127.0.0.1:\(port)", process: counter) {
            let descriptor = try FastCGIClient.connect(port: port, from: "127.0.0.2")
            defer { close(descriptor) }
            allowed = try FastCGIClient.exchange(descriptor, FastCGIClient.get("/api/sys/stats"))
            return allowed != nil
        }
        #expect(allowed?.hasPrefix("Status: 200") == true)

        let refused = try FastCGIClient.connect(port: port, from: "127.0.0.1")
        defer { close(refused) }
        #expect(try FastCGIClient.exchange(refused, FastCGIClient.get("/api/sys/stats")) == nil)
        try await waitUntil("the log line", process: counter) {
            counter.stderr.contains("closed a connection from a peer not in --allowed-clients")
                && counter.stderr.contains("peer=127.0.0.1")
        }
    }

    @Test func anAddressOtherMachinesReachNeedsAnAllowList() throws {
        let directory = try TemporaryDirectory()
        let counter = try ChildProcess(
            try visitorCounterExecutable(),
            ["serve", "--listen", "0.0.0.0:\(try LocalStack.freePort())", "--database", directory.path("visitors.sqlite")],
            in: directory, name: "counter")
        #expect(counter.wait() != 0)
        #expect(counter.stderr.contains("can be reached from other machines"), "\(counter.stderr)")
        #expect(counter.stderr.contains("--allowed-clients"))
    }

    @Test func theUnixSocketGetsTheGroupAsked() async throws {
        let directory = try TemporaryDirectory()
        let socket = directory.path("fcgi.sock")
        let group = try #require(getgrnam("nogroup"), "the nogroup group is missing").pointee.gr_gid
        let counter = try ChildProcess(
            try visitorCounterExecutable(),
            ["serve", "--listen", "unix:\(socket)", "--socket-group", "nogroup", "--workers", "1", "--database", directory.path("visitors.sqlite")],
            in: directory, name: "counter")
        try await waitUntil("the socket", process: counter) { FileManager.default.fileExists(atPath: socket) }
        var status = stat()
        #expect(stat(socket, &status) == 0)
        #expect(status.st_gid == group)
        #expect(status.st_mode & 0o777 == 0o660)
        kill(counter.process.processIdentifier, SIGTERM)
        #expect(counter.wait() == 0)

        let missing = try ChildProcess(
            try visitorCounterExecutable(),
            ["serve", "--listen", "unix:\(socket)", "--socket-group", "no-such-group-here", "--database", directory.path("visitors.sqlite")],
            in: directory, name: "missing")
        #expect(missing.wait() != 0)
        #expect(missing.stderr.contains("there is no group no-such-group-here"), "\(missing.stderr)")
    }

    /// `days` days with 100 countries each, so every range read is real work for SQLite.
    private func fillDailyHistory(_ path: String, days: Int) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)  // the counter's writer may be in a transaction
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        let today = UTCTimestamp.day(Date())
        try queue.write { db in
            for day in (today - days)...today {
                let date = UTCTimestamp.dayText(day)
                try db.execute(
                    sql: "INSERT OR REPLACE INTO daily_visits (date, visitors, unique_visitors) VALUES (?, 2000, 1000)", arguments: [date])
                for country in 0..<100 {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO daily_countries (date, country_code, visitors) VALUES (?, ?, 10)",
                        arguments: [date, "C\(country)"])
                }
            }
        }
    }

    @Test func aFloodOfDistinctDailyRangesLeavesTheIndexPageFree() async throws {
        let stack = try await LocalStack(workers: 1, threads: 8)
        try fillDailyHistory(stack.databasePath, days: 800)
        let today = UTCTimestamp.day(Date())
        struct Flood {
            var sent = 0
            var stop = false
            var statuses: [Int: Int] = [:]
            var missingRetryAfter = 0
        }
        let flood = Mutex(Flood())
        let done = DispatchGroup()
        let giveUp = ContinuousClock.now + .seconds(120)
        // The flood lasts until GET / has been timed 50 times, and at least 2,000 ranges were sent:
        // a fixed count alone can end before the first GET / when most ranges are turned away at once.
        // Its clients are threads of their own: on Dispatch's pool they could keep this test's task
        // from resuming after its sleeps, and the flood would then never end.
        for _ in 0..<32 {
            done.enter()
            Thread.start(named: "daily-flood") {
                defer { done.leave() }
                while true {
                    let ticket: Int? = flood.withLock { flood in
                        guard !flood.stop || flood.sent < 2000, ContinuousClock.now < giveUp else { return nil }
                        flood.sent += 1
                        return flood.sent
                    }
                    guard let ticket else { return }
                    // 2,000 distinct ranges of 300 to 305 days within the last 800 days, sent in turn.
                    let range = ticket % 2000
                    let from = today - 400 - range % 400
                    let path = "/api/sys/stats/daily?from=\(UTCTimestamp.dayText(from))&to=\(UTCTimestamp.dayText(from + 300 + range / 400))"
                    let response = try? stack.request("GET", path)
                    flood.withLock { flood in
                        flood.statuses[response?.status ?? 0, default: 0] += 1
                        if response?.status == 503 && response?.headers["retry-after"] == nil { flood.missingRetryAfter += 1 }
                    }
                }
            }
        }
        var index: [Double] = []
        for _ in 0..<50 {
            let started = ContinuousClock.now
            #expect(try stack.request("GET", "/").status == 200)
            index.append((ContinuousClock.now - started).inSeconds)
            try await Task.sleep(for: .microseconds(20_000))
        }
        let sentWhileTimed = flood.withLock { flood in
            flood.stop = true
            return flood.sent
        }
        done.wait()
        let sorted = index.sorted()
        let (daily, missingRetryAfter) = flood.withLock { ($0.statuses, $0.missingRetryAfter) }
        let summary = "GET / \(index.count) times while \(sentWhileTimed) ranges were sent, p50 \(sorted[sorted.count / 2] * 1000) ms, max \(sorted.last! * 1000) ms; daily \(daily)"
        // GET / waits for no daily read: nine in ten within a second, and none near a read's time.
        #expect(sorted[sorted.count * 9 / 10] < 1 && sorted.last! < 5, "\(summary)")
        #expect(Set(daily.keys).isSubset(of: [200, 503]), "\(summary)")
        #expect(daily[200, default: 0] > 0, "\(summary)")
        #expect(daily.values.reduce(0, +) >= 2000, "\(summary)")
        #expect(missingRetryAfter == 0)
        #expect(stack.stopCounter() == 0)
    }
}
