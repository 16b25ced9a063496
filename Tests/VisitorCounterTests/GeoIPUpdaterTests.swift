import Foundation
import Synchronization
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// deploy/visitor-counter-geoip-update against a local HTTPS server (Python's, with a certificate made
/// for the test) standing in for download.db-ip.com, and a plain HTTP one beside it: a good file is
/// installed and nginx reloaded; anything else leaves the old file, does not reload, and is logged.
@Suite(.serialized)
struct GeoIPUpdaterTests {
    /// A folder with the installed (old) database, a web root the server serves, and the updater's
    /// config pointing at both.
    final class Fixture {
        let directory: TemporaryDirectory
        let database: String
        let webRoot: String
        /// The HTTPS server, whose certificate the updater is given through curl's `CURL_CA_BUNDLE`.
        let server: ChildProcess
        let port: UInt16
        /// A plain HTTP server of the same files, which the updater must never take a file from.
        let plainServer: ChildProcess
        let plainPort: UInt16
        let certificate: String

        /// The servers: files from the web root; for a file with a `NAME.redirect` beside it, a redirect to
        /// the address that file holds; every file chunked, without a length, while a file `chunked` is
        /// in the web root. HTTPS when given a certificate (key and certificate in one file).
        static let serverScript = #"""
            import http.server, os, ssl, sys
            port, root = int(sys.argv[1]), sys.argv[2]
            class Handler(http.server.SimpleHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def __init__(self, *arguments, **options):
                    super().__init__(*arguments, directory=root, **options)
                def do_GET(self):
                    path = os.path.join(root, os.path.basename(self.path))
                    if os.path.exists(path + ".redirect"):
                        self.send_response(302)
                        self.send_header("Location", open(path + ".redirect").read().strip())
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif os.path.exists(os.path.join(root, "chunked")) and os.path.isfile(path):
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        with open(path, "rb") as file:
                            while chunk := file.read(256):
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        super().do_GET()
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
            if len(sys.argv) > 3:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(sys.argv[3])
                server.socket = context.wrap_socket(server.socket, server_side=True)
            server.serve_forever()
            """#

        init() async throws {
            try requireProgram("/usr/bin/python3")
            try requireProgram("/usr/bin/perl")
            try requireProgram("/usr/bin/mmdblookup")
            try requireProgram("/usr/bin/openssl")
            directory = try TemporaryDirectory()
            try FileManager.default.createDirectory(atPath: directory.path("GeoIP"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: directory.path("www"), withIntermediateDirectories: true)
            database = directory.path("GeoIP/country.mmdb")
            webRoot = directory.path("www")
            try Data(try Self.testDatabase(builtDaysAgo: 40)).write(to: URL(fileURLWithPath: database))

            certificate = directory.path("certificate.pem")
            let key = directory.path("key.pem")
            // An elliptic-curve key: made in milliseconds, where an RSA key took a tenth of a second.
            let openssl = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/openssl"),
                ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-addext",
                 "subjectAltName=IP:127.0.0.1", "-days", "2", "-keyout", key, "-out", certificate],
                in: directory, name: "openssl")
            guard openssl.wait() == 0 else { throw TestFailure("openssl req failed: \(openssl.stderr)") }
            let keyAndCertificate = directory.path("server.pem")
            try (String(contentsOfFile: key, encoding: .utf8) + String(contentsOfFile: certificate, encoding: .utf8))
                .write(toFile: keyAndCertificate, atomically: true, encoding: .utf8)

            port = try LocalStack.freePort()
            server = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/python3"),
                ["-c", Self.serverScript, "\(port)", webRoot, keyAndCertificate], in: directory, name: "https")
            let port = port
            try await waitUntil("the HTTPS server", process: server) { Self.accepts(port: port) }
            plainPort = try LocalStack.freePort()
            plainServer = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/python3"), ["-c", Self.serverScript, "\(plainPort)", webRoot],
                in: directory, name: "http")
            let plainPort = plainPort
            try await waitUntil("the HTTP server", process: plainServer) { Self.accepts(port: plainPort) }
        }

        /// SIGKILL: Python keeps the signal mask it inherits, in which SIGTERM is blocked. The servers have
        /// no children and nothing to save.
        deinit {
            for process in [server, plainServer] {
                kill(process.process.processIdentifier, SIGKILL)
                process.process.waitUntilExit()
            }
        }

        static func accepts(port: UInt16) -> Bool {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        }

        /// DB-IP's name for a month's file: `dbip-country-lite-2026-11.mmdb.gz`.
        static func fileName(monthsAgo: Int = 0) -> String {
            let today = UTCTimestamp.format(Date())
            let months = Int(today.prefix(4))! * 12 + Int(today.dropFirst(5).prefix(2))! - 1 - monthsAgo
            return String(format: "dbip-country-lite-%04d-%02d.mmdb.gz", months / 12, months % 12 + 1)
        }

        /// Puts `bytes`, gzipped unless `gzipped` is false, where the server answers for that month.
        func serve(_ bytes: [UInt8], gzipped: Bool = true, monthsAgo: Int = 0) throws {
            let plain = directory.path("served.mmdb")
            try Data(bytes).write(to: URL(fileURLWithPath: plain))
            let target = "\(webRoot)/\(Self.fileName(monthsAgo: monthsAgo))"
            if gzipped {
                let gzip = try ChildProcess(URL(fileURLWithPath: "/bin/gzip"), ["-c", plain], in: directory, name: "gzip")
                guard gzip.wait() == 0 else { throw TestFailure("gzip failed: \(gzip.stderr)") }
                try FileManager.default.copyItem(atPath: gzip.stdoutURL.path, toPath: target)
            } else {
                try FileManager.default.copyItem(atPath: plain, toPath: target)
            }
        }

        /// A test database's bytes, built `builtDaysAgo` days ago or at `epoch`.
        func testDatabase(builtDaysAgo: Int = 0, epoch: String? = nil, loopbackOnly: Bool = false) throws -> [UInt8] {
            try Self.testDatabase(builtDaysAgo: builtDaysAgo, epoch: epoch, loopbackOnly: loopbackOnly)
        }

        /// The databases made so far in this run, by their arguments: the MaxMind writer's Perl takes a
        /// quarter of a second each time, and most tests want the same few files.
        private static let madeDatabases = Mutex<[String: [UInt8]]>([:])

        static func testDatabase(builtDaysAgo: Int = 0, epoch: String? = nil, loopbackOnly: Bool = false) throws -> [UInt8] {
            let name = "\(epoch.map { "epoch \($0)" } ?? "\(builtDaysAgo) days ago") \(loopbackOnly)"
            if let made = madeDatabases.withLock({ $0[name] }) { return made }
            let directory = try TemporaryDirectory()
            let path = directory.path("made.mmdb")
            let epoch = epoch ?? "\(Int(Date().timeIntervalSince1970) - builtDaysAgo * 86_400)"
            let script = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/perl"),
                [repositoryRoot.appendingPathComponent("scripts/make-test-geoip.pl").path, path, epoch, "DBIP-Country-Lite"]
                    + (loopbackOnly ? ["loopback-only"] : []),
                in: directory, name: "make-test-geoip")
            guard script.wait() == 0 else {
                throw TestFailure("make-test-geoip.pl failed (libmaxmind-db-writer-perl: run scripts/install-deps.sh test): \(script.stderr)")
            }
            let made = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
            madeDatabases.withLock { $0[name] = made }
            return made
        }

        /// Makes the HTTPS server answer this month's file with a redirect to `location`.
        func redirect(to location: String) throws {
            try location.write(toFile: "\(webRoot)/\(Self.fileName()).redirect", atomically: true, encoding: .utf8)
        }

        var installed: [UInt8] { (try? Array(Data(contentsOf: URL(fileURLWithPath: database)))) ?? [] }

        /// Runs the updater with a config file of these settings (and `settings`), programs looked for in
        /// `programs` first; answers its exit status and log.
        func runUpdater(
            reloadCommand: String, settings: String = "", programs: String? = nil, arguments: [String] = [],
            user: String? = nil
        ) throws -> (status: Int32, log: String) {
            let config = directory.path("visitor-counter-geoip-update")
            try """
                GEOIP_DATABASE=\(database)
                DBIP_BASE_URL=https://127.0.0.1:\(port)
                GEOIP_CHECK_ADDRESSES="81.2.69.142 2001:db8:1::1"
                GEOIP_RELOAD_COMMAND="\(reloadCommand)"
                \(settings)

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let path = (programs.map { [$0] } ?? []) + [ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
            let asUser = try user.map { user in
                try requireTag(.root, for: "the updater as \(user)")
                try requireProgram("/usr/bin/setpriv")
                return ["--reuid=\(user)", "--regid=\(user == "nobody" ? "nogroup" : user)", "--clear-groups", "/usr/bin/env"]
            }
            let updater = try ChildProcess(
                URL(fileURLWithPath: asUser == nil ? "/usr/bin/env" : "/usr/bin/setpriv"),
                (asUser ?? []) + ["PATH=\(path.joined(separator: ":"))", "VISITOR_COUNTER_GEOIP_CONFIG=\(config)", "CURL_CA_BUNDLE=\(certificate)",
                 repositoryRoot.appendingPathComponent("deploy/visitor-counter-geoip-update").path] + arguments,
                in: directory, name: "updater-\(UUID().uuidString)")
            return (updater.wait(), updater.stderr + updater.stdout)
        }
    }

    @Test func theUpdaterIsExecutableAtTheDocumentedPath() {
        #expect(FileManager.default.isExecutableFile(atPath: repositoryRoot.appendingPathComponent("deploy/visitor-counter-geoip-update").path))
    }

    @Test(.tags(.nginx)) func aGoodFileIsInstalledAndNginxReloaded() async throws {
        let fixture = try await Fixture()
        let stack = try await LocalStack(.init(workers: 1, geoip: fixture.database))
        let before = try stack.health()
        #expect((before.json["geoip_database"] as? [String: Any])?["age_days"] as? Int == 40)

        let new = try fixture.testDatabase(builtDaysAgo: 2)
        try fixture.serve(new)
        let run = try fixture.runUpdater(reloadCommand: "/usr/sbin/nginx -c \(stack.directory.path("nginx.conf")) -s reload")
        #expect(run.status == 0, "\(run.log)")
        #expect(fixture.installed == new)
        #expect(run.log.contains("installed https://127.0.0.1:\(fixture.port)/\(Fixture.fileName()) as \(fixture.database)"), "\(run.log)")
        #expect(run.log.contains("nginx reloaded"))
        let mode = try FileManager.default.attributesOfItem(atPath: fixture.database)[.posixPermissions] as? Int
        #expect(mode == 0o644)
        // Nothing left behind but the lock file.
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path("GeoIP")).sorted()
            == [".visitor-counter-geoip-update.lock", "country.mmdb"])

        // nginx's new workers read the new file: health, through them, shows its age.
        try await stack.waitFor("nginx to read the new database") {
            (try stack.health().json["geoip_database"] as? [String: Any])?["age_days"] as? Int == 2
        }
        #expect(stack.stopCounter() == 0)
    }

    @Test func lastMonthsFileIsTakenBeforeThisMonthsIsOut() async throws {
        let fixture = try await Fixture()
        let new = try fixture.testDatabase(builtDaysAgo: 20)
        try fixture.serve(new, monthsAgo: 1)
        let marker = fixture.directory.path("reloaded")
        let run = try fixture.runUpdater(reloadCommand: "touch \(marker)")
        #expect(run.status == 0, "\(run.log)")
        #expect(run.log.contains("\(Fixture.fileName()) answered HTTP 404"))
        #expect(fixture.installed == new)
        #expect(FileManager.default.fileExists(atPath: marker))
    }

    /// GEOIP_PROVIDER=maxmind: what geoipupdate leaves in the folder it is given is checked and installed.
    /// A stand-in geoipupdate writes a test file there, since MaxMind's needs an account and the network.
    @Test func geoLite2ComesThroughGeoipupdate() async throws {
        let fixture = try await Fixture()
        let new = directory(fixture, "GeoLite2-Country.mmdb")
        try makeTestGeoIPDatabase(at: new, builtDaysAgo: 5, databaseType: "GeoLite2-Country")
        let programs = directory(fixture, "bin")
        try FileManager.default.createDirectory(atPath: programs, withIntermediateDirectories: true)
        let arguments = directory(fixture, "geoipupdate.arguments")
        try """
            #!/bin/sh
            echo "$@" > \(arguments)
            while [ $# -gt 0 ]; do [ "$1" = -d ] && folder=$2; shift; done
            cp \(new) "$folder/GeoLite2-Country.mmdb"
            """.write(toFile: "\(programs)/geoipupdate", atomically: true, encoding: .utf8)
        chmod("\(programs)/geoipupdate", 0o755)
        let conf = directory(fixture, "GeoIP.conf")
        try "EditionIDs GeoLite2-Country\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let marker = directory(fixture, "reloaded")
        let run = try fixture.runUpdater(
            reloadCommand: "touch \(marker)", settings: "GEOIP_PROVIDER=maxmind\nGEOIPUPDATE_CONFIG=\(conf)", programs: programs)
        #expect(run.status == 0, "\(run.log)")
        #expect(run.log.contains("installed geoipupdate (GeoLite2-Country) as \(fixture.database): GeoLite2-Country built"), "\(run.log)")
        #expect(fixture.installed == (try Array(Data(contentsOf: URL(fileURLWithPath: new)))))
        #expect(try String(contentsOfFile: arguments, encoding: .utf8).hasPrefix("-f \(conf) -d \(fixture.database.dropLast(12))"))
        #expect(FileManager.default.fileExists(atPath: marker))
    }

    private func directory(_ fixture: Fixture, _ name: String) -> String { fixture.directory.path(name) }

    /// `--no-reload`, as the service runs it: the file is installed, and the reload left to the service's
    /// privileged `ExecStartPost=`.
    @Test func withNoReloadTheFileIsInstalledAndNothingReloaded() async throws {
        let fixture = try await Fixture()
        let new = try fixture.testDatabase(builtDaysAgo: 1)
        try fixture.serve(new)
        let marker = fixture.directory.path("reloaded")
        let run = try fixture.runUpdater(reloadCommand: "touch \(marker)", arguments: ["--no-reload"])
        #expect(run.status == 0, "\(run.log)")
        #expect(fixture.installed == new)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// As the service runs it: an unprivileged user that owns the database's folder (`StateDirectory=`,
    /// 0755) and nothing else, with `--no-reload`. The new file must be readable by nginx's workers
    /// (www-data), and the script must need nothing that user cannot do.
    @Test(.tags(.root)) func anUnprivilegedUserInstallsAFileNginxsWorkersCanRead() async throws {
        guard geteuid() == 0 else { throw TestFailure("this test needs root, to run the updater as nobody through setpriv") }
        let fixture = try await Fixture()
        let folder = fixture.directory.path("GeoIP")
        let nobody = try #require(getpwnam("nobody")).pointee
        #expect(chown(folder, nobody.pw_uid, nobody.pw_gid) == 0)
        #expect(chmod(folder, 0o755) == 0)
        let new = try fixture.testDatabase(builtDaysAgo: 1)
        try fixture.serve(new)
        let run = try fixture.runUpdater(reloadCommand: "true", arguments: ["--no-reload"], user: "nobody")
        #expect(run.status == 0, "\(run.log)")
        #expect(fixture.installed == new)
        let attributes = try FileManager.default.attributesOfItem(atPath: fixture.database)
        #expect(attributes[.posixPermissions] as? Int == 0o644)
        #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value == nobody.pw_uid)

        let read = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/setpriv"),
            ["--reuid=www-data", "--regid=www-data", "--clear-groups", "/bin/cat", fixture.database],
            in: fixture.directory, name: "read-as-www-data")
        #expect(read.wait() == 0, "\(read.stderr)")
        #expect(Array((try? Data(contentsOf: read.stdoutURL)) ?? Data()) == new)
    }

    /// A redirect is followed to another https address: the https-only rule does not refuse redirects
    /// as such, so the refusals below are for the protocol.
    @Test func aRedirectToAnotherHTTPSAddressIsFollowed() async throws {
        let fixture = try await Fixture()
        let new = try fixture.testDatabase(builtDaysAgo: 1)
        try fixture.serve(new)
        try FileManager.default.moveItem(
            atPath: "\(fixture.webRoot)/\(Fixture.fileName())", toPath: "\(fixture.webRoot)/mirror.mmdb.gz")
        try fixture.redirect(to: "https://127.0.0.1:\(fixture.port)/mirror.mmdb.gz")
        let run = try fixture.runUpdater(reloadCommand: "true")
        #expect(run.status == 0, "\(run.log)")
        #expect(fixture.installed == new)
    }

    enum BadDownload: String, CaseIterable {
        case missing, corrupt, notGzip, resolvesNothing
        /// Each of these would be installed without its check: the file itself is good.
        case redirectedToPlainHTTP, plainHTTPAddress, tooLargeDownload, tooLargeChunkedDownload, unpacksTooLarge
        case builtBefore2000, builtTwoDaysAhead, buildEpochPast64Bits, buildEpochMaximum
    }

    @Test(arguments: BadDownload.allCases)
    func aBadDownloadLeavesTheOldFileAndIsLogged(_ bad: BadDownload) async throws {
        let fixture = try await Fixture()
        let old = fixture.installed
        let url = "https://127.0.0.1:\(fixture.port)/\(Fixture.fileName())"
        var settings = ""
        let expected: String
        switch bad {
        case .missing:
            expected = "no DB-IP file for this month or the last under https://127.0.0.1:\(fixture.port) (HTTP 404)"
        case .corrupt:
            // Gzip of bytes that are no database: it unpacks, but does not open.
            try fixture.serve((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
            expected = "is not a MaxMind database"
        case .notGzip:
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2).dropLast(100).map { $0 }, gzipped: false)
            expected = "is not a gzip file"
        case .resolvesNothing:
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2, loopbackOnly: true))
            expected = "has no country for 81.2.69.142 (GEOIP_CHECK_ADDRESSES)"
        case .redirectedToPlainHTTP:
            // The plain server has the same good file.
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2))
            try fixture.redirect(to: "http://127.0.0.1:\(fixture.plainPort)/\(Fixture.fileName())")
            expected = "downloading \(url) failed (curl exit 1): curl: (1) Protocol \"http\" not supported"
        case .plainHTTPAddress:
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2))
            settings = "DBIP_BASE_URL=http://127.0.0.1:\(fixture.plainPort)"
            expected = "DBIP_BASE_URL must be an https address, not http://127.0.0.1:\(fixture.plainPort)"
        case .tooLargeDownload, .tooLargeChunkedDownload:
            // The test database is about 1 KB gzipped; without a length, only the file size limit stops it.
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2))
            if bad == .tooLargeChunkedDownload {
                try Data().write(to: URL(fileURLWithPath: "\(fixture.webRoot)/chunked"))
            }
            settings = "GEOIP_MAX_DOWNLOAD_BYTES=500"
            expected = "\(url) is larger than GEOIP_MAX_DOWNLOAD_BYTES (500 bytes)"
        case .unpacksTooLarge:
            // About 2 KB unpacked.
            try fixture.serve(try fixture.testDatabase(builtDaysAgo: 2))
            settings = "GEOIP_MAX_DATABASE_BYTES=1000"
            expected = "\(url) unpacks to more than GEOIP_MAX_DATABASE_BYTES (1000 bytes)"
        case .builtBefore2000, .builtTwoDaysAhead, .buildEpochPast64Bits, .buildEpochMaximum:
            let epoch = switch bad {
            case .builtBefore2000: "946684799"
            case .builtTwoDaysAhead: "\(Int(Date().timeIntervalSince1970) + 2 * 86_400)"
            case .buildEpochPast64Bits: "10000000000000000"
            default: "18446744073709551615"
            }
            try fixture.serve(try fixture.testDatabase(epoch: epoch))
            expected = "\(url) has a build time out of range (epoch \(epoch); "
        }
        let marker = fixture.directory.path("reloaded")
        let run = try fixture.runUpdater(reloadCommand: "touch \(marker)", settings: settings)
        #expect(run.status != 0)
        #expect(run.log.contains("<3>visitor-counter-geoip-update: "), "\(run.log)")
        #expect(run.log.contains(expected), "\(run.log)")
        #expect(run.log.contains("\(fixture.database) is left as it was"), "\(run.log)")
        #expect(fixture.installed == old)
        #expect(!FileManager.default.fileExists(atPath: marker), "nginx was reloaded after a failure")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path("GeoIP")).sorted()
            == [".visitor-counter-geoip-update.lock", "country.mmdb"])
    }
}
