import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The repository's top folder, found from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The programs that stand for a service, with the tag a test that runs one carries (``requireTag(_:for:)``).
let serviceTags: [String: Tag] = [
    "/usr/sbin/nginx": .nginx, "/usr/bin/chromium": .browser, "/usr/bin/mount": .root,
    "\(PostgresCluster.binaries)/postgres": .postgres,
]

/// Fails loudly when a program a test needs is not installed, or is a service's and the test lacks its tag.
func requireProgram(_ path: String) throws {
    if let tag = serviceTags[path] { try requireTag(tag, for: path) }
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestFailure("\(path) is missing: run scripts/install-deps.sh (the test command does)")
    }
}

/// Writes a small country database with `scripts/make-test-geoip.pl` (MaxMind::DB::Writer): the networks
/// the script lists, loopback included, built `builtDaysAgo` days before now, or at `buildEpoch` when given.
func makeTestGeoIPDatabase(
    at path: String, builtDaysAgo: Int = 3, buildEpoch: UInt64? = nil, databaseType: String = "DBIP-Country-Lite"
) throws {
    try requireProgram("/usr/bin/perl")
    let directory = try TemporaryDirectory()
    let epoch = buildEpoch.map(String.init) ?? "\(Int(Date().timeIntervalSince1970) - builtDaysAgo * 86_400)"
    let script = try ChildProcess(
        URL(fileURLWithPath: "/usr/bin/perl"),
        [repositoryRoot.appendingPathComponent("scripts/make-test-geoip.pl").path, path, "\(epoch)", databaseType],
        in: directory, name: "make-test-geoip")
    guard script.wait() == 0 else {
        throw TestFailure("make-test-geoip.pl failed (libmaxmind-db-writer-perl: run scripts/install-deps.sh test): \(script.stderr)")
    }
}

/// The counter behind a real nginx with the GeoIP module, as `scripts/run.sh` starts them, on a free
/// port and in a temporary folder of its own.
///
/// `@unchecked Sendable`: the client threads only call ``request(_:_:headers:)``, which reads
/// constants; the counter is only replaced (``restartCounter()``) from the test's own thread.
final class LocalStack: @unchecked Sendable {
    struct Options {
        var workers = 1
        var threads = 8
        var extraArguments: [String] = []
        /// Where the database goes; the stack's own folder when `nil` (a tmpfs mounted by the test, say).
        var databaseDirectory: String?
        /// `--database` as given, in place of a file in ``databaseDirectory``: a PostgreSQL URI, say
        /// (with `--state-directory` in ``extraArguments``).
        var database: String?
        /// Run the counter as this user (through `setpriv`), from a copy of the executable in the
        /// stack's folder, so that the user can reach it.
        var user: String?
        /// Run the counter from a copy of the executable in the stack's folder, which the test may replace.
        var ownExecutable = false
        /// The test opens the listening socket and hands it to `serve` on standard input, as systemd's
        /// socket unit does: it stays open while the counter restarts, so nginx never finds it missing.
        var inheritSocket = false
        /// The country database nginx reads: a GeoIP2 file (``makeTestGeoIPDatabase(at:builtDaysAgo:databaseType:)``)
        /// through the shipped geoip2 block, or `legacy` for the deploy file's fallback and Debian's
        /// geoip-database, whose real data the older tests' addresses rely on.
        var geoip = "legacy"
        /// nginx's `keepalive` in the upstream, in place of the shipped one.
        var nginxKeepalive: Int?
        /// Variables added to the counter's environment, which its workers inherit.
        var environment: [String: String] = [:]
        /// Files of the site's root (`html/`), by path, written before nginx starts.
        var siteFiles: [String: String] = [:]
        /// Lines added to the shipped site's `server` block, after `server_name`, as an owner adds them.
        var serverLines = ""
    }

    let options: Options
    let directory: TemporaryDirectory
    let port: UInt16
    let socketPath: String
    let databasePath: String
    private(set) var counter: ChildProcess
    let nginx: ChildProcess
    private let heldSocket: ListeningSocket?
    private var starts = 0

    convenience init(workers: Int, threads: Int = 8, extraArguments: [String] = []) async throws {
        try await self.init(Options(workers: workers, threads: threads, extraArguments: extraArguments))
    }

    init(_ options: Options) async throws {
        try requireProgram("/usr/sbin/nginx")
        self.options = options
        directory = try TemporaryDirectory()
        port = try Self.freePort()
        socketPath = directory.path("fcgi.sock")
        databasePath = options.database ?? (options.databaseDirectory ?? directory.url.path) + "/visitors.sqlite"

        let generator = try ChildProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [
                repositoryRoot.appendingPathComponent("scripts/nginx-local.sh").path, directory.url.path, "\(port)", socketPath,
                options.geoip,
            ],
            in: directory, name: "nginx-local")
        guard generator.wait() == 0 else { throw TestFailure("nginx-local.sh failed: \(generator.stderr)") }
        if let keepalive = options.nginxKeepalive {
            let site = directory.path("site.conf")
            let text = try String(contentsOfFile: site, encoding: .utf8)
            guard text.range(of: #"keepalive \d+;"#, options: .regularExpression) != nil else {
                throw TestFailure("deploy/nginx.conf has no keepalive line to change")
            }
            try text.replacingOccurrences(of: #"keepalive \d+;"#, with: "keepalive \(keepalive);", options: .regularExpression)
                .write(toFile: site, atomically: true, encoding: .utf8)
        }

        for (path, content) in options.siteFiles {
            let url = URL(fileURLWithPath: directory.path("html")).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: url, atomically: true, encoding: .utf8)
        }
        if !options.serverLines.isEmpty {
            let site = directory.path("site.conf")
            let text = try String(contentsOfFile: site, encoding: .utf8)
            guard let name = text.range(of: "server_name _;\n") else { throw TestFailure("deploy/nginx.conf has no server_name line") }
            var changed = text
            changed.insert(contentsOf: options.serverLines + "\n", at: name.upperBound)
            try changed.write(toFile: site, atomically: true, encoding: .utf8)
        }

        heldSocket = options.inheritSocket ? try ListeningSocket.open(.unix(path: socketPath), mode: 0o666) : nil
        counter = try Self.startCounter(options, directory: directory, socketPath: socketPath, databasePath: databasePath, socket: heldSocket, run: 0)
        starts = 1
        let socketPath = socketPath
        try await waitUntil("the counter's socket", process: counter) { FileManager.default.fileExists(atPath: socketPath) }
        nginx = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-c", directory.path("nginx.conf")], in: directory, name: "nginx")
        try await waitUntil("nginx", process: nginx) { try self.request("GET", "/api/sys/stats").status == 200 }
        // Health names a worker as down until its writer has published its figures once: a test that
        // reads health right away would see that, not what it tests.
        try await waitUntil("every worker to be up", process: counter) {
            (try? self.health().json["workers_down"] as? [Int])?.isEmpty == true
        }
    }

    private static func startCounter(
        _ options: Options, directory: TemporaryDirectory, socketPath: String, databasePath: String,
        socket: ListeningSocket?, run: Int
    ) throws -> ChildProcess {
        var executable = try visitorCounterExecutable()
        var arguments = [
            "serve", "--database", databasePath, "--workers", "\(options.workers)", "--threads", "\(options.threads)",
            "--stats-cache", "1", "--flush-interval", "0.5",
        ]
        if socket == nil { arguments += ["--listen", "unix:\(socketPath)"] }
        arguments += options.extraArguments
        let copy = directory.path("visitor-counter")
        if options.user != nil || options.ownExecutable, !FileManager.default.fileExists(atPath: copy) {
            try FileManager.default.copyItem(atPath: executable.path, toPath: copy)
        }
        if options.ownExecutable { executable = URL(fileURLWithPath: copy) }
        if let user = options.user {
            try requireTag(.root, for: "the counter as \(user)")
            try requireProgram("/usr/bin/setpriv")
            arguments = ["--reuid=\(user)", "--regid=\(user == "nobody" ? "nogroup" : user)", "--clear-groups", copy] + arguments
            executable = URL(fileURLWithPath: "/usr/bin/setpriv")
        }
        let name = run == 0 ? "counter" : "counter-\(run)"
        return try ChildProcess(
            executable, arguments, in: directory, name: name,
            standardInput: socket.map { FileHandle(fileDescriptor: $0.descriptor, closeOnDealloc: false) },
            environment: options.environment)
    }

    /// SIGTERM, never SIGKILL: a killed nginx master leaves its workers behind, and they hold the
    /// descriptor Foundation watches to see the process end.
    deinit {
        for child in [nginx, counter] where child.process.isRunning {
            kill(child.process.processIdentifier, SIGTERM)
            child.process.waitUntilExit()
        }
        if let heldSocket {
            close(heldSocket.descriptor)
            heldSocket.removeSocketFile()
        }
    }

    /// SIGTERM to the counter; answers its exit status once it has stopped.
    func stopCounter() -> Int32 {
        kill(counter.process.processIdentifier, SIGTERM)
        return counter.wait()
    }

    /// Stops the counter if it runs and starts it again on the same database, socket and options;
    /// returns once a worker answers.
    func restartCounter() async throws {
        if counter.process.isRunning { _ = stopCounter() }
        counter = try Self.startCounter(
            options, directory: directory, socketPath: socketPath, databasePath: databasePath, socket: heldSocket, run: starts)
        starts += 1
        let expected = options.workers
        try await waitFor("the restarted counter") { self.workerPIDs().count == expected }
    }

    /// The counter's health JSON, decoded, with the HTTP status.
    func health() throws -> (status: Int, json: [String: Any]) {
        let response = try request("GET", "/api/sys/health")
        let json = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] ?? [:]
        return (response.status, json)
    }

    /// One figure summed over the workers in the health JSON (`buffered_visits`, `failed_writes`, …).
    func healthSum(_ field: String) throws -> Int {
        let workers = try health().json["workers"] as? [[String: Any]] ?? []
        return workers.reduce(0) { $0 + ($1[field] as? Int ?? 0) }
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
        /// The body as it came, for a body that is not text (gzip).
        var bodyBytes: [UInt8]

        /// The connection closed before the `Content-Length` the header announced: nginx had sent the
        /// header and the worker died before the rest. A client sees an error, not a page. Only for
        /// answers with a body (not `HEAD`).
        var isCutOff: Bool {
            guard let length = headers["content-length"].flatMap({ Int($0) }) else { return false }
            return bodyBytes.count < length
        }
    }

    /// One HTTP/1.1 request on a connection of its own, through nginx, from 127.0.0.1 or, with `ipv6`, ::1.
    func request(_ method: String, _ path: String, headers: [String: String] = [:], ipv6: Bool = false) throws -> HTTPResponse {
        let descriptor = try ipv6 ? connectToNginxOverIPv6() : connectToNginx()
        defer { close(descriptor) }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        var sent = headers
        if !sent.keys.contains(where: { $0.lowercased() == "user-agent" }) { sent["User-Agent"] = Self.browser }
        for (name, value) in sent { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8)
        guard send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw TestFailure("send failed") }
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
        let headerLength = response[..<split.upperBound].utf8.count
        return HTTPResponse(
            status: status, headers: headers, body: String(response[split.upperBound...]),
            bodyBytes: Array(received[headerLength...]))
    }

    /// `GET`s of `paths` one after the other on one kept connection, each sent once the answer before it
    /// has come in whole (by its `Content-Length`): the status of each and how long it took.
    func getsOnOneConnection(_ paths: [String]) throws -> [(status: Int, seconds: Double)] {
        let descriptor = try connectToNginx()
        defer { close(descriptor) }
        var answers: [(status: Int, seconds: Double)] = []
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        for path in paths {
            let started = ContinuousClock.now
            let text = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: \(Self.browser)\r\n\r\n"
            let bytes = Array(text.utf8)
            guard send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw TestFailure("send failed") }
            while true {
                let head = String(decoding: pending, as: UTF8.self)
                if let split = head.range(of: "\r\n\r\n") {
                    let header = head[..<split.lowerBound]
                    let length = header.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    let headerBytes = head[..<split.upperBound].utf8.count
                    if pending.count >= headerBytes + length {
                        let status = Int(header.split(separator: " ")[1]) ?? 0
                        answers.append((status, (ContinuousClock.now - started).inSeconds))
                        pending.removeFirst(headerBytes + length)
                        break
                    }
                }
                let count = recv(descriptor, &buffer, buffer.count, 0)
                if count <= 0 { throw TestFailure("the connection closed before the answer to \(path)") }
                pending += buffer[0..<count]
            }
        }
        return answers
    }

    /// Sends `bytes` as they are on a connection of its own and answers the HTTP status, or `nil` when
    /// the connection closed without an answer.
    func rawExchange(_ bytes: [UInt8]) throws -> Int? {
        let descriptor = try connectToNginx()
        defer { close(descriptor) }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }  // nginx may answer (413, 400) and close before the body is all sent
            offset += sent
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.count < 64 {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        let statusLine = String(decoding: received.prefix(64), as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        return parts.count > 1 && statusLine.hasPrefix("HTTP/") ? Int(parts[1]) : nil
    }

    private func connectToNginx() throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("connect to nginx failed: errno \(errno)")
        }
        return descriptor
    }

    private func connectToNginxOverIPv6() throws -> Int32 {
        let descriptor = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket(AF_INET6) failed: errno \(errno)") }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        address.sin6_addr = in6addr_loopback
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("connect to nginx on [::1]:\(port) failed: errno \(errno)")
        }
        return descriptor
    }

    /// The user agent requests carry unless a test gives another: a browser's, so they count as visits.
    static let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

    /// A port for a listener a test starts: below the kernel's ephemeral range, so that no outgoing
    /// connection of a test under load takes it between this check and the listener's `bind`, and free
    /// on both loopback addresses, as nginx listens on both.
    static func freePort() throws -> UInt16 {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let ephemeralStart = range?.first ?? 32768
        let candidates = 10_000..<max(ephemeralStart, 10_001)
        for _ in 0..<100 {
            let port = UInt16(Int.random(in: candidates))
            if canBind(port, family: AF_INET) && canBind(port, family: AF_INET6) { return port }
        }
        throw TestFailure("no free port below \(ephemeralStart) in 100 tries")
    }

    private static func canBind(_ port: UInt16, family: Int32) -> Bool {
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        address.sin6_port = port.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
            }
        }
    }

    /// ``waitUntil(_:seconds:process:_:)`` while the counter runs.
    func waitFor(_ what: String, seconds: Double = 15, _ condition: () throws -> Bool) async throws {
        try await waitUntil(what, seconds: seconds, process: counter, condition)
    }
}
