import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing

/// A directory of its own for one test, removed when the value is dropped.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("visitor-counter-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The folder that holds the test bundle and, beside it, the products `swift build` made.
let buildDirectory: URL = {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: executable).deletingLastPathComponent()
}()

/// The `visitor-counter` executable of this build; the test fails loudly when it is missing.
func visitorCounterExecutable() throws -> URL {
    let url = buildDirectory.appendingPathComponent("visitor-counter")
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
        throw TestFailure("visitor-counter is not built at \(url.path): run `swift build` before `swift test`")
    }
    return url
}

/// Creates an empty file at `path`, or replaces the file there with an empty one.
func createEmptyFile(_ path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil) else { throw TestFailure("cannot create \(path)") }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A child process whose output is collected in files, so a chatty child never blocks on a full pipe.
final class ChildProcess {
    let process = Process()
    let stdoutURL: URL
    let stderrURL: URL

    init(
        _ executable: URL, _ arguments: [String], in directory: TemporaryDirectory, name: String,
        standardInput: FileHandle? = nil, environment: [String: String] = [:]
    ) throws {
        stdoutURL = directory.url.appendingPathComponent("\(name).stdout")
        stderrURL = directory.url.appendingPathComponent("\(name).stderr")
        for url in [stdoutURL, stderrURL] { try createEmptyFile(url.path) }
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        // Not the test runner's own standard input, whatever CI made it: `serve` without --listen reads
        // its socket from there. A handle of its own: Foundation's shared `FileHandle.nullDevice` given
        // to Process had its descriptor closed under other tests' open files.
        process.standardInput = try standardInput ?? FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/null"))
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        try process.run()
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// ``wait()`` on a Dispatch thread rather than the cooperative pool, for a child that takes seconds:
    /// the pool has a thread per core (two here), and a test blocked in `waitUntilExit` holds one.
    func exitStatus() async -> Int32 {
        let process = process
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }

    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
}

/// A logger for library code under test that keeps the test output to the tests' own findings.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A logger whose lines the test reads back, for behaviour whose outcome is a log line: swift-log's
/// `InMemoryLogHandler` at its default level, `.info`.
func recordingLogger() -> (logger: Logger, lines: InMemoryLogHandler) {
    let handler = InMemoryLogHandler()
    return (Logger(label: "test", factory: { _ in handler }), handler)
}

/// Holds SQLite's write lock on a database from a connection of its own, as another process would
/// with `BEGIN IMMEDIATE`, until ``release()``.
final class SQLiteWriteLock {
    let queue: DatabaseQueue

    init(_ path: String) throws {
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        // The counter's workers may be in the middle of a write: wait for them, as another process would.
        configuration.busyMode = .timeout(10)
        queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
    }

    func release() throws {
        try queue.writeWithoutTransaction { db in try db.execute(sql: "COMMIT") }
    }
}

/// `bytes` decompressed by the system's `gzip -dc`, as text.
func gunzip(_ bytes: [UInt8]) throws -> String {
    try requireProgram("/bin/gzip")
    let directory = try TemporaryDirectory()
    let file = directory.path("body.gz")
    try Data(bytes).write(to: URL(fileURLWithPath: file))
    let child = try ChildProcess(URL(fileURLWithPath: "/bin/gzip"), ["-dc", file], in: directory, name: "gunzip")
    guard child.wait() == 0 else { throw TestFailure("gzip -dc failed: \(child.stderr)") }
    return child.stdout
}

/// A count shared by a test's client threads: a class, so escaping closures share it, around a `Mutex`.
/// (Not named `Atomic`, which would hide `Synchronization.Atomic`.)
final class SharedCount: Sendable {
    private let value: Mutex<Int>
    init(_ value: Int) { self.value = Mutex(value) }
    func add(_ amount: Int) { value.withLock { $0 += amount } }
    func load() -> Int { value.withLock { $0 } }
}
