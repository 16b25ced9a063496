import Foundation
import GRDB
import Synchronization
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// What a peer of the socket or a country file can send, through a real counter behind a real nginx:
/// records libfcgi would abort on, build times that used to trap, peers that trickle, and a worker
/// that stops answering. After each, the worker answers the next request, or is replaced.
@Suite(.serialized, .tags(.nginx))
struct HostileInputTests {
    private func storedVisits(_ stack: LocalStack) throws -> Int {
        try SQLiteStore(path: stack.databasePath).stats().totalVisitors
    }

    /// The three ways past the old check that made libfcgi parse lengths adding up to 2^31 (its
    /// `Malloc` assert aborted the worker), and a second begin.
    @Test func recordsNginxNeverSendsCloseTheConnectionAndTheWorkerAnswersTheNext() async throws {
        let stack = try await LocalStack(workers: 1, threads: 4)
        let workers = stack.workerPIDs()
        let huge = FastCGIClient.length(1 << 30) + FastCGIClient.length(1 << 30) + Array("A".utf8)
        let params = FastCGIClient.record(type: 4, FastCGIClient.pair("REQUEST_METHOD", "GET") + FastCGIClient.pair("REQUEST_URI", "/"))
        let hostile: [(String, [UInt8])] = [
            ("a management record after the params",
             FastCGIClient.begin(keep: true) + params + FastCGIClient.record(type: 4, [])
                + FastCGIClient.record(type: 9, huge, id: 0) + FastCGIClient.record(type: 5, [])),
            ("an empty params record of request 0 before the real ones",
             FastCGIClient.begin(keep: true) + FastCGIClient.record(type: 4, [], id: 0) + FastCGIClient.record(type: 4, huge)
                + FastCGIClient.record(type: 4, []) + FastCGIClient.record(type: 5, [])),
            ("an empty params record of another request",
             FastCGIClient.begin(keep: true) + FastCGIClient.record(type: 4, [], id: 2) + FastCGIClient.record(type: 4, huge)
                + FastCGIClient.record(type: 4, []) + FastCGIClient.record(type: 5, [])),
            ("a second begin", FastCGIClient.begin(keep: true) + params + FastCGIClient.get("/")),
        ]
        var answered = 0
        for (name, bytes) in hostile {
            let descriptor = try FastCGIClient.connect(unix: stack.socketPath)
            defer { close(descriptor) }
            #expect(try FastCGIClient.exchange(descriptor, bytes) == nil, "\(name): answered")
            // A good request on a connection of its own gets its answer from the same worker.
            let good = try FastCGIClient.connect(unix: stack.socketPath)
            defer { close(good) }
            let answer = try FastCGIClient.exchange(good, FastCGIClient.get("/"))
            #expect(answer?.hasPrefix("Status: 200") == true, "\(name): \(answer ?? "no answer")")
            if answer?.hasPrefix("Status: 200") == true { answered += 1 }
            #expect(stack.workerPIDs() == workers, "\(name): the worker was replaced")
        }
        for _ in 0..<10 where try stack.request("GET", "/").status == 200 { answered += 1 }
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("closed a FastCGI connection before libfcgi read it"))
        #expect(!stack.counter.stderr.contains("worker died"), "\(stack.counter.stderr)")
        #expect(try storedVisits(stack) == answered)
    }

    /// A country file whose build time is far in the future, as an updater without its check would
    /// install, and the same time in a param from a peer: every route still answers.
    @Test func aBuildTimeFarInTheFutureLeavesEveryRouteAnswering() async throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("country.mmdb")
        try makeTestGeoIPDatabase(at: database, buildEpoch: 10_000_000_000_000_000)
        let stack = try await LocalStack(.init(workers: 1, geoip: database))
        let workers = stack.workerPIDs()
        for path in ["/", "/api/sys/health", "/api/sys/stats", "/api/sys/metrics", "/"] {
            #expect(try stack.request("GET", path).status == 200, "\(path)")
        }
        let health = try stack.health().json
        let geoip = health["geoip_database"] as? [String: Any]
        #expect(geoip?["build"] == nil, "\(health)")

        for epoch in ["10000000000000000", "999999999999999999", "18446744073709551615"] {
            let request = FastCGIClient.begin()
                + FastCGIClient.record(
                    type: 4,
                    FastCGIClient.pair("REQUEST_METHOD", "GET") + FastCGIClient.pair("REQUEST_URI", "/api/sys/health")
                        + FastCGIClient.pair("GEOIP_DATABASE_BUILD", epoch) + FastCGIClient.pair("GEOIP_DATABASE_TYPE", "DBIP-Country-Lite"))
                + FastCGIClient.record(type: 4, []) + FastCGIClient.record(type: 5, [])
            let descriptor = try FastCGIClient.connect(unix: stack.socketPath)
            defer { close(descriptor) }
            let answer = try FastCGIClient.exchange(descriptor, request)
            #expect(answer?.hasPrefix("Status: 200") == true, "\(epoch): \(answer ?? "no answer")")
        }
        #expect(try stack.request("GET", "/").status == 200)
        #expect(stack.workerPIDs() == workers)
        #expect(stack.stopCounter() == 0)
        #expect(!stack.counter.stderr.contains("worker died"), "\(stack.counter.stderr)")
        #expect(try storedVisits(stack) == 3)
    }

    /// Two peers that send a request a byte every two seconds, on a worker with two request threads:
    /// each holds a thread until the request's deadline, then loses its connection, and a request
    /// through nginx is answered meanwhile.
    @Test func twoTricklingPeersHoldNoThreadPastTheRequestDeadline() async throws {
        let stack = try await LocalStack(workers: 1, threads: 2)
        let request = FastCGIClient.get("/api/sys/stats")
        let tricklers = try (0..<2).map { _ in try FastCGIClient.connect(unix: stack.socketPath) }
        defer { tricklers.forEach { close($0) } }
        let closedAfter = Mutex<[Duration]>([])
        let done = DispatchGroup()
        for descriptor in tricklers {
            DispatchQueue.global().async(group: done) {
                let started = ContinuousClock.now
                for byte in request.prefix(20) {
                    if self.sendByte(descriptor, byte) == false { break }
                    usleep(2_000_000)
                }
                closedAfter.withLock { $0.append(ContinuousClock.now - started) }
            }
        }
        try await Task.sleep(for: .seconds(1))
        let asked = ContinuousClock.now
        let answer = try stack.request("GET", "/api/sys/stats")
        let waited = ContinuousClock.now - asked
        #expect(answer.status == 200)
        #expect(waited < .seconds(15), "a request waited \(waited) behind two trickling peers")
        done.wait()
        // Each trickler found its connection closed long before its 20 bytes (40 s) were sent.
        #expect(closedAfter.withLock { $0 }.allSatisfy { $0 < .seconds(30) }, "\(closedAfter.withLock { $0 })")
        #expect(stack.stopCounter() == 0)
    }

    /// One byte to a peer; `false` once the counter has closed the connection.
    private func sendByte(_ descriptor: Int32, _ byte: UInt8) -> Bool {
        var byte = byte
        guard Glibc.send(descriptor, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 else { return false }
        var probe: UInt8 = 0
        return recv(descriptor, &probe, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) != 0
    }

    /// A worker stopped with SIGSTOP answers nothing and never exits: the main process sees its
    /// heartbeat stop, kills it and starts another, whose start writes what its journal held.
    @Test func aWorkerThatStopsAnsweringIsReplaced() async throws {
        let stack = try await LocalStack(workers: 1, threads: 2, extraArguments: ["--hang-timeout", "15"])
        let hung = try #require(stack.workerPIDs().first)
        var answered = 0
        for _ in 0..<10 where try stack.request("GET", "/").status == 200 { answered += 1 }
        kill(hung, SIGSTOP)
        try await waitUntil("another worker", seconds: 60, process: stack.counter) {
            let workers = stack.workerPIDs()
            return workers.count == 1 && !workers.contains(hung)
        }
        for _ in 0..<10 where try stack.request("GET", "/").status == 200 { answered += 1 }
        #expect(answered == 20)
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("worker stopped answering, killing it"), "\(stack.counter.stderr)")
        #expect(try storedVisits(stack) == answered)
    }
}
