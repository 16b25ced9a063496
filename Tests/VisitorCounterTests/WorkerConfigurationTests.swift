import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The one value `serve` hands each worker: whole, and refused with a clear line when it is not one.
struct WorkerConfigurationTests {
    /// Every field set to something other than what a bare configuration has.
    static let everyField = WorkerProcess.Configuration(
        database: "postgresql:///visitors?host=/run/postgresql", stateDirectory: "/var/lib/visitor-counter",
        recorder: VisitRecorder.Configuration(
            batchSize: 250, flushInterval: .milliseconds(1500), bufferLimit: 9_000,
            retry: RetryPolicy(firstDelay: .milliseconds(100), maxDelay: .seconds(7)), stopWriteLimit: .seconds(4),
            stopRetryLimit: .seconds(9), worker: 3, sorting: VisitSorting(countsBots: true), storeIP: .hashed),
        threads: 5, statsCache: .seconds(11), healthThreshold: .seconds(70), retentionDays: 30,
        indexTemplate: "/etc/visitor-counter/index.mustache", indexCSP: "default-src 'self'",
        geoipMaxAge: .seconds(86_400), allowList: PeerAllowList(argument: "192.0.2.10,2001:db8::1"),
        ignoredAddresses: PeerAllowList(argument: "203.0.113.7,198.51.100.0/24,2001:db8:5::/48"),
        statusDescriptor: 3, listeningDescriptor: 7, timeZone: "Asia/Kathmandu")

    static let bare = WorkerProcess.Configuration(
        database: "v.sqlite", recorder: VisitRecorder.Configuration(batchSize: 1, flushInterval: .seconds(1)), threads: 1,
        statsCache: .seconds(1), healthThreshold: .seconds(2))

    /// A pipe's read end holding `bytes`, its write end closed, as the supervisor makes it.
    func pipe(holding bytes: [UInt8]) throws -> Int32 {
        var ends: [Int32] = [0, 0]
        #expect(Glibc.pipe(&ends) == 0)
        #expect(bytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) } == bytes.count)
        close(ends[1])
        return ends[0]
    }

    @Test func everyFieldComesThroughTheDescriptor() throws {
        // The test covers every stored field: each one differs from the bare configuration's.
        let fields = Mirror(reflecting: Self.everyField).children.map { String(describing: $0.value) }
        let bareFields = Mirror(reflecting: Self.bare).children.map { String(describing: $0.value) }
        #expect(fields.count == 15)
        for (label, (set, unset)) in zip(Mirror(reflecting: Self.everyField).children.map(\.label), zip(fields, bareFields)) {
            #expect(set != unset, "\(label ?? "?") is the same in both configurations")
        }
        let descriptor = try pipe(holding: try Self.everyField.encoded())
        defer { close(descriptor) }
        #expect(try WorkerProcess.Configuration(reading: descriptor) == Self.everyField)
    }

    @Test func aGarbledValueIsRefusedWithWhatToDo() throws {
        var bytes = try Self.everyField.encoded()
        bytes.removeLast(5)
        let descriptor = try pipe(holding: bytes)
        defer { close(descriptor) }
        #expect {
            try WorkerProcess.Configuration(reading: descriptor)
        } throws: { error in
            "\(error)".hasPrefix("the worker configuration on descriptor \(descriptor) is not one this version reads")
                && "\(error)".contains("workers are started by `visitor-counter serve`")
        }
    }

    /// A worker process given a garbled configuration on its descriptor says so in one line and exits.
    @Test func aWorkerWithAGarbledConfigurationExitsWithAClearError() throws {
        let directory = try TemporaryDirectory()
        let configuration = try pipe(holding: Array(#"{"database": "v.sqlite", "threads": "#.utf8))
        defer { close(configuration) }
        let stderrPath = directory.path("worker.stderr")
        let stderr = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(stderr >= 0)
        defer { close(stderr) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        posix_spawn_file_actions_adddup2(&actions, configuration, Supervisor.configurationDescriptor)
        let executable = try visitorCounterExecutable().path
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(executable), strdup("worker"), nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        #expect(posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(Supervisor.describe(status: status) == "exit 1")
        let message = try String(contentsOfFile: stderrPath, encoding: .utf8)
        #expect(message.hasPrefix("visitor-counter: worker: the worker configuration on descriptor 5 is not one this version reads"), "\(message)")
        #expect(message.split(separator: "\n").count == 1, "\(message)")
    }
}
