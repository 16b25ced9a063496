import Foundation
import Testing
import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// `serve` refuses bad values with one line on stderr and a non-zero exit, having started nothing.
struct ServeCommandTests {
    func serve(_ arguments: [String], in directory: TemporaryDirectory) throws -> (status: Int32, stderr: String) {
        let child = try ChildProcess(try visitorCounterExecutable(), ["serve"] + arguments, in: directory, name: "serve")
        return (child.wait(), child.stderr)
    }

    @Test(arguments: [
        (["--workers", "-1"], "--workers must be from 1 to 256"),
        (["--threads", "0"], "--threads must be from 1 to 1024"),
        (["--batch-size", "-5"], "--batch-size must be from 1 to 1000000"),
        (["--flush-interval", "-1"], "--flush-interval must be from 0.001 to 3600 seconds"),
        // Under a millisecond, the workers' interval would round to 0, which they refuse at their start.
        (["--flush-interval", "0.0004"], "--flush-interval must be from 0.001 to 3600 seconds"),
        (["--stats-cache", "0"], "--stats-cache must be from 1 to 3600"),
        (["--socket-mode", "999"], "The value '999' is invalid for '--socket-mode <octal-mode>'"),
        (["--batch-size", "500", "--buffer-limit", "100"], "--buffer-limit must be from --batch-size (500)"),
        (["--health-threshold", "0"], "--health-threshold must be from 1 to 86400"),
        // Refused by the parser, which lists the values there are.
        (
            ["--store-ip", "partial"],
            "The value 'partial' is invalid for '--store-ip <store-ip>'. Please provide one of 'full', 'truncated', 'hashed' or 'none'."
        ),
        (["--allowed-clients", "192.0.2.1,nginx"], "The value '192.0.2.1,nginx' is invalid for '--allowed-clients <address,...>'"),
        (["--retention-days", "-3"], "--retention-days must be from 0 to 100000"),
        (["--time-zone", "Europe/Berlinn"], "--time-zone: 'Europe/Berlinn' is not an IANA time zone this system knows, such as Europe/Berlin"),
        (["--time-zone", "CET"], "--time-zone: 'CET' is not an IANA time zone this system knows"),
        (["--time-zone", ""], "--time-zone: '' is not an IANA time zone this system knows"),
        (
            ["--ignore-ips", "203.0.113.7,198.51.100.0/33,2001:db8::/48"],
            "--ignore-ips: '198.51.100.0/33' is not an IPv4 or IPv6 address or CIDR range"
        ),
        (["--ignore-ips", "203.0.113.7, owner.example"], "--ignore-ips: 'owner.example' is not an IPv4 or IPv6 address"),
        (["--index-csp", "default-src 'self'\r\nX-Injected: 1"], "--index-csp must be one line of text"),
        (["--index-template", "DIR", "--database", "DIR/v.sqlite"], "index template DIR is a directory"),
        (["--flush-interval", "90"], "--health-threshold must be longer than --flush-interval (90.0 s)"),
        (["--listen", "nowhere"], "The value 'nowhere' is invalid for '--listen <unix:/path|host:port>'"),
        (["--bogus"], "Unknown option '--bogus'"),
        (["--database", "/nonexistent/dir/v.sqlite", "--listen", "unix:/tmp/unused.sock"], "does not exist"),
        (["--database", "DIR/v.sqlite"], "standard input is not a listening socket"),
        // A PostgreSQL database needs a local folder for the journals and the audit log.
        (["--database", "postgresql:///visitors?host=/nonexistent"], "needs a local folder for this host's journals"),
        (
            ["--database", "postgres:///visitors", "--state-directory", "/nonexistent/state", "--listen", "unix:/tmp/unused.sock"],
            "the state directory (--state-directory) /nonexistent/state does not exist"
        ),
    ])
    func badValuesAreOneClearLine(arguments: [String], message: String) throws {
        let directory = try TemporaryDirectory()
        let result = try serve(arguments.map { $0.replacingOccurrences(of: "DIR", with: directory.url.path) }, in: directory)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message.replacingOccurrences(of: "DIR", with: directory.url.path)), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("v.sqlite")))
    }

    /// A database whose days are in another zone than `--time-zone` (UTC when not given) is refused at
    /// the start in one line that says what to do, before any worker starts.
    @Test func aDatabaseInAnotherZoneIsRefusedInOneLine() throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("v.sqlite")
        _ = try SQLiteStore(path: database, timeZone: LocalCalendar(identifier: "Asia/Kathmandu"))
        for arguments in [[], ["--time-zone", "Asia/Kolkata"]] {
            let result = try serve(["--database", database, "--listen", "unix:\(directory.path("s.sock"))"] + arguments, in: directory)
            #expect(result.status != 0)
            let given = arguments.last ?? "UTC"
            #expect(
                result.stderr.contains(
                    "the database's days are in Asia/Kathmandu, not \(given): start with --time-zone Asia/Kathmandu, or run "
                        + "`visitor-counter rebuild-days --time-zone \(given)` first"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.path("s.sock")))
        }
    }

    /// `rebuild-days` counts a UTC database's days again in Kathmandu and records the zone, which `stats`
    /// then reads; a zone that is no IANA name is refused in one line before the database is opened.
    @Test func rebuildDaysRecordsTheNewZoneForTheOtherCommands() throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("v.sqlite")
        // 20:00 UTC is 01:45 the next day in Kathmandu.
        let evening = UTCTimestamp.parse("2027-01-14T20:00:00Z")!
        try SQLiteStore(path: database).write(
            VisitBatch(counting: [Visit(trustedIP: "192.0.2.1", userAgent: "Mozilla/5.0 test", country: "Japan", countryCode: "JP", time: evening)]),
            at: evening)
        let bad = try ChildProcess(
            try visitorCounterExecutable(), ["rebuild-days", "--database", database, "--time-zone", "Asia/Katmandoo"], in: directory,
            name: "rebuild-bad")
        #expect(bad.wait() != 0)
        #expect(bad.stderr == "visitor-counter: --time-zone: 'Asia/Katmandoo' is not an IANA time zone this system knows, such as Europe/Berlin (see /usr/share/zoneinfo, package tzdata)\n", "\(bad.stderr)")
        let rebuild = try ChildProcess(
            try visitorCounterExecutable(), ["rebuild-days", "--database", database, "--time-zone", "Asia/Kathmandu"], in: directory,
            name: "rebuild")
        #expect(rebuild.wait() == 0, "\(rebuild.stderr)")
        #expect(rebuild.stdout.hasPrefix("rebuild-days: the days from 2027-01-14 on are counted again in Asia/Kathmandu from 1 visit rows"), "\(rebuild.stdout)")
        let export = try ChildProcess(
            try visitorCounterExecutable(), ["export", "--database", database, "--daily"], in: directory, name: "export")
        #expect(export.wait() == 0, "\(export.stderr)")
        #expect(export.stdout == "date,visitors,unique_visitors,country_code,country_visitors\n2027-01-15,1,0,JP,1\n")
        let stats = try ChildProcess(try visitorCounterExecutable(), ["stats", "--database", database], in: directory, name: "stats")
        #expect(stats.wait() == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains(#""time_zone": "Asia/Kathmandu""#), "\(stats.stdout)")
    }

    /// `export`'s values are parsed by ArgumentParser too: a bad one is refused before any file is read.
    @Test(arguments: [
        (["--format", "xml"], "The value 'xml' is invalid for '--format <format>'. Please provide one of 'csv' and 'json'."),
        (["--from", "2026-02-30"], "The value '2026-02-30' is invalid for '--from <yyyy-mm-dd>'"),
        (["--to", "yesterday"], "The value 'yesterday' is invalid for '--to <yyyy-mm-dd>'"),
        (["--from", "2026-11-02", "--to", "2026-11-01"], "--from (2026-11-02) is after --to (2026-11-01)"),
    ])
    func exportRefusesBadValuesInOneLine(arguments: [String], message: String) throws {
        let directory = try TemporaryDirectory()
        let child = try ChildProcess(
            try visitorCounterExecutable(), ["export", "--database", directory.path("none.sqlite")] + arguments,
            in: directory, name: "export")
        #expect(child.wait() != 0)
        #expect(child.stderr == "visitor-counter: \(message)\n", "\(child.stderr)")
    }

    @Test(.tags(.nginx)) func aSocketInUseIsRefusedAndAStaleOneReplaced() async throws {
        let stack = try await LocalStack(workers: 1)
        let second = try serve(
            ["--listen", "unix:\(stack.socketPath)", "--database", stack.directory.path("other.sqlite")],
            in: stack.directory)
        #expect(second.status != 0)
        #expect(second.stderr.contains("in use by a running process"), "\(second.stderr)")

        // A socket file whose process died (SIGKILL leaves it behind) is taken over.
        let stale = stack.directory.path("stale.sock")
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: stale.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(descriptor)
        let child = try ChildProcess(
            try visitorCounterExecutable(),
            ["serve", "--listen", "unix:\(stale)", "--workers", "1", "--database", stack.directory.path("stale.sqlite")],
            in: stack.directory, name: "stale")
        try await waitUntil("the replacing counter", process: child) { child.stderr.contains("worker started") }
        kill(child.process.processIdentifier, SIGTERM)
        #expect(child.wait() == 0)
    }

    /// Started with umask 022, as from a shell: the database, its WAL files and the visit journal hold
    /// visitors' addresses, and none of them may be readable by other users. The socket keeps the
    /// mode asked for.
    @Test func serveMakesNoFileOthersCanReadWhateverItsUmask() async throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("visitors.sqlite")
        let socketPath = directory.path("fcgi.sock")
        let child = try ChildProcess(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", #"umask 022; exec "$0" serve --listen "unix:$1" --workers 1 --database "$2""#,
             try visitorCounterExecutable().path, socketPath, database],
            in: directory, name: "serve-umask")
        try await waitUntil("the counter", process: child) { child.stderr.contains("worker started") }
        let connection = try FastCGIClient.connect(unix: socketPath)
        defer { close(connection) }
        let answer = try FastCGIClient.exchange(connection, FastCGIClient.get("/"))
        #expect(answer != nil)
        try await waitUntil("the WAL file", process: child) { FileManager.default.fileExists(atPath: "\(database)-wal") }

        func modes() throws -> [String: Int] {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter { $0.hasPrefix("visitors.sqlite") }
            return try Dictionary(uniqueKeysWithValues: names.map { name in
                (name, try FileManager.default.attributesOfItem(atPath: directory.path(name))[.posixPermissions] as? Int ?? -1)
            })
        }
        let running = try modes()
        #expect(Set(running.keys).isSuperset(of: ["visitors.sqlite", "visitors.sqlite-wal", "visitors.sqlite-shm"]), "\(running)")
        #expect(running.keys.contains { $0.contains(".journal-") }, "no visit journal: \(running)")
        for (name, mode) in running { #expect(mode & 0o007 == 0, "\(name) is \(String(mode, radix: 8))") }
        let socketMode = try FileManager.default.attributesOfItem(atPath: socketPath)[.posixPermissions] as? Int
        #expect(socketMode == 0o660)

        kill(child.process.processIdentifier, SIGTERM)
        #expect(child.wait() == 0, "\(child.stderr)")
        for (name, mode) in try modes() { #expect(mode & 0o007 == 0, "\(name) is \(String(mode, radix: 8))") }
    }

    @Test func aTemplateThatDoesNotParseStopsServeWithWhereAndWhy() throws {
        let directory = try TemporaryDirectory()
        let template = directory.path("index.mustache")
        try "<h1>{{total_visitors}}</h1>\n{{#countries}}\n".write(toFile: template, atomically: true, encoding: .utf8)
        let result = try serve(
            ["--database", directory.path("v.sqlite"), "--listen", "unix:\(directory.path("s.sock"))", "--index-template", template],
            in: directory)
        #expect(result.status != 0)
        #expect(
            result.stderr == "visitor-counter: index template \(template), line 3, column 1: a section is opened but never "
                + "closed (a {{#…}} or {{^…}} without its {{/…}})\n", "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("v.sqlite")))
        #expect(!FileManager.default.fileExists(atPath: directory.path("s.sock")))
    }

    @Test func aTemplateWithATagInItsScriptNeedsItsOwnPolicy() throws {
        let directory = try TemporaryDirectory()
        let template = directory.path("index.mustache")
        try "<p id=n></p><script>document.getElementById('n').textContent = {{total_visitors}};</script>\n"
            .write(toFile: template, atomically: true, encoding: .utf8)
        let result = try serve(
            ["--database", directory.path("v.sqlite"), "--listen", "unix:\(directory.path("s.sock"))", "--index-template", template],
            in: directory)
        #expect(result.status != 0)
        #expect(result.stderr.contains("holds a Mustache tag, so no fixed hash can allow it"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func theTemplateCommandPrintsTheBuiltInPageAndChecksFiles() throws {
        let directory = try TemporaryDirectory()
        let printed = try ChildProcess(try visitorCounterExecutable(), ["template"], in: directory, name: "template")
        #expect(printed.wait() == 0)
        #expect(printed.stdout == IndexTemplate.standardText)
        try printed.stdout.write(toFile: directory.path("copy.mustache"), atomically: true, encoding: .utf8)
        let check = try ChildProcess(
            try visitorCounterExecutable(), ["template", "--check", directory.path("copy.mustache")], in: directory, name: "check")
        #expect(check.wait() == 0)
        #expect(check.stdout == "\(directory.path("copy.mustache")): the template parses\n")
        let missing = try ChildProcess(
            try visitorCounterExecutable(), ["template", "--check", directory.path("none.mustache")], in: directory, name: "missing")
        #expect(missing.wait() != 0)
        #expect(missing.stderr == "visitor-counter: index template \(directory.path("none.mustache")) does not exist\n")
    }
}
