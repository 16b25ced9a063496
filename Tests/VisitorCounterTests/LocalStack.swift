import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The repository's top folder, found from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Fails loudly when a program a test needs is not installed.
func requireProgram(_ path: String) throws {
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestFailure("\(path) is missing: run scripts/install-deps.sh (the test command does)")
    }
}

/// The counter behind a real nginx with the GeoIP module, as `scripts/run.sh` starts them, on a free
/// port and in a temporary folder of its own.
///
/// `@unchecked Sendable`: every stored property is a constant, and the client threads only call
/// ``request(_:_:headers:)``, which reads them.
final class LocalStack: @unchecked Sendable {
    let directory: TemporaryDirectory
    let port: UInt16
    let socketPath: String
    let databasePath: String
    let counter: ChildProcess
    let nginx: ChildProcess

    init(workers: Int, threads: Int = 8, extraArguments: [String] = []) throws {
        try requireProgram("/usr/sbin/nginx")
        directory = try TemporaryDirectory()
        port = try Self.freePort()
        socketPath = directory.path("fcgi.sock")
        databasePath = directory.path("visitors.sqlite")

        let generator = try ChildProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [repositoryRoot.appendingPathComponent("scripts/nginx-local.sh").path, directory.url.path, "\(port)", socketPath],
            in: directory, name: "nginx-local")
        guard generator.wait() == 0 else { throw TestFailure("nginx-local.sh failed: \(generator.stderr)") }

        counter = try ChildProcess(
            try visitorCounterExecutable(),
            ["serve", "--listen", "unix:\(socketPath)", "--database", databasePath, "--workers", "\(workers)",
             "--threads", "\(threads)", "--stats-cache", "1", "--flush-interval", "0.5"] + extraArguments,
            in: directory, name: "counter")
        let socketPath = socketPath
        try Self.waitFor("the counter's socket", process: counter) { FileManager.default.fileExists(atPath: socketPath) }
        nginx = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-c", directory.path("nginx.conf")], in: directory, name: "nginx")
        try Self.waitFor("nginx", process: nginx) { (try? self.request("GET", "/api/sys/stats").status) == 200 }
    }

    /// SIGTERM, never SIGKILL: a killed nginx master leaves its workers behind, and they hold the
    /// descriptor Foundation watches to see the process end.
    deinit {
        for child in [nginx, counter] where child.process.isRunning {
            kill(child.process.processIdentifier, SIGTERM)
            child.process.waitUntilExit()
        }
    }

    /// SIGTERM to the counter; answers its exit status once it has stopped.
    func stopCounter() -> Int32 {
        kill(counter.process.processIdentifier, SIGTERM)
        return counter.wait()
    }

    /// The pids of the counter's worker processes.
    func workerPIDs() -> Set<Int32> {
        let parent = counter.process.processIdentifier
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return Set(entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent ? pid : nil
        })
    }

    struct HTTPResponse {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    /// One HTTP/1.1 request on a connection of its own, through nginx.
    func request(_ method: String, _ path: String, headers: [String: String] = [:]) throws -> HTTPResponse {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect to nginx failed: errno \(errno)") }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8)
        guard send(descriptor, bytes, bytes.count, 0) == bytes.count else { throw TestFailure("send failed") }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        let response = String(decoding: received, as: UTF8.self)
        guard let split = response.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP answer: \(response)") }
        let lines = response[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return HTTPResponse(status: status, headers: headers, body: String(response[split.upperBound...]))
    }

    static func freePort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard ok else { throw TestFailure("no free port: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Polls `condition` for up to 15 s; fails with the process's stderr if it exits or time runs out.
    static func waitFor(_ what: String, process: ChildProcess, _ condition: () -> Bool) throws {
        for _ in 0..<300 {
            if condition() { return }
            guard process.process.isRunning else { throw TestFailure("\(what) did not start: \(process.stderr)") }
            usleep(50_000)
        }
        throw TestFailure("\(what) was not ready after 15 s: \(process.stderr)")
    }
}
