import Foundation
import Testing

/// The files a site owner installs: nginx must accept the site, systemd the units.
struct DeployFilesTests {
    /// With the geoip2 module alone, and with the legacy module loaded too, before or after it (Debian's
    /// modules-enabled loads both when both are installed): the site's variables must not collide. The
    /// database path is the test database's, since nginx -t opens the file.
    @Test(.tags(.nginx), arguments: [
        ["ngx_http_geoip2_module.so"], ["ngx_http_geoip_module.so", "ngx_http_geoip2_module.so"],
        ["ngx_http_geoip2_module.so", "ngx_http_geoip_module.so"],
    ])
    func theNginxSitePassesNginxT(modules: [String]) throws {
        try requireProgram("/usr/sbin/nginx")
        let directory = try TemporaryDirectory()
        try makeTestGeoIPDatabase(at: directory.path("country.mmdb"))
        let site = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/nginx.conf"), encoding: .utf8)
        #expect(site.contains("geoip2 /var/lib/GeoIP/country.mmdb {"))
        try site.replacingOccurrences(of: "/var/lib/GeoIP/country.mmdb", with: directory.path("country.mmdb"))
            .write(toFile: directory.path("site.conf"), atomically: true, encoding: .utf8)
        // Debian's nginx.conf includes sites-enabled/* inside http {}, after loading modules-enabled/*.
        try """
            \(modules.map { "load_module /usr/lib/nginx/modules/\($0);" }.joined(separator: "\n"))
            pid \(directory.path("nginx.pid"));
            error_log stderr;
            events {}
            http { include \(directory.path("site.conf")); }
            """.write(toFile: directory.path("nginx.conf"), atomically: true, encoding: .utf8)
        for module in modules where !FileManager.default.fileExists(atPath: "/usr/lib/nginx/modules/\(module)") {
            throw TestFailure("/usr/lib/nginx/modules/\(module) is missing: run scripts/install-deps.sh (the test command does)")
        }
        let check = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-t", "-c", directory.path("nginx.conf")], in: directory,
            name: "nginx-t")
        #expect(check.wait() == 0, "\(check.stderr)")
        #expect(check.stderr.contains("test is successful"))
    }

    /// The documented fallback, as scripts/nginx-local.sh makes it from the deploy file: the legacy
    /// module alone, with Debian's geoip-database.
    @Test(.tags(.nginx)) func theLegacyFallbackPassesNginxT() throws {
        try requireProgram("/usr/sbin/nginx")
        let directory = try TemporaryDirectory()
        let generator = try ChildProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [repositoryRoot.appendingPathComponent("scripts/nginx-local.sh").path, directory.url.path, "8080", "/tmp/none.sock", "legacy"],
            in: directory, name: "nginx-local")
        #expect(generator.wait() == 0, "\(generator.stderr)")
        let configuration = try String(contentsOfFile: directory.path("nginx.conf"), encoding: .utf8)
        #expect(!configuration.contains("geoip2"))
        let site = try String(contentsOfFile: directory.path("site.conf"), encoding: .utf8)
        #expect(site.contains("\ngeoip_country /usr/share/GeoIP/GeoIP.dat;") && !site.contains("\ngeoip2 "))
        let check = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-t", "-c", directory.path("nginx.conf")], in: directory,
            name: "nginx-t")
        #expect(check.wait() == 0, "\(check.stderr)")
    }

    /// The shipped site limits the public JSON routes per address, and never GET /. nginx runs the site
    /// as scripts/nginx-local.sh makes it with the limit kept, with no counter behind it: a request
    /// let through gets 502, one the limit stops 429 (the limit comes before the upstream). The rate is
    /// made 1 a minute here, so that a slow machine's requests do not earn new ones; the burst is the
    /// shipped one.
    @Test(.tags(.nginx)) func theSiteLimitsTheJSONRoutesPerAddressButNotTheIndex() async throws {
        try requireProgram("/usr/sbin/nginx")
        try requireProgram("/usr/bin/curl")
        let directory = try TemporaryDirectory()
        try makeTestGeoIPDatabase(at: directory.path("country.mmdb"))
        let port = try LocalStack.freePort()
        let generator = try ChildProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [repositoryRoot.appendingPathComponent("scripts/nginx-local.sh").path, directory.url.path, "\(port)",
             directory.path("none.sock"), directory.path("country.mmdb")],
            in: directory, name: "nginx-local", environment: ["VISITOR_COUNTER_NGINX_RATE_LIMIT": "keep"])
        #expect(generator.wait() == 0, "\(generator.stderr)")
        let site = try String(contentsOfFile: directory.path("site.conf"), encoding: .utf8)
        #expect(site.contains("limit_req_zone $binary_remote_addr zone=visitor_counter_api:10m rate=5r/s;"))
        let burst = try #require(site.firstMatch(of: #/limit_req zone=visitor_counter_api burst=(\d+) nodelay;/#).flatMap { Int($0.output.1) })
        try site.replacingOccurrences(of: "rate=5r/s", with: "rate=1r/m")
            .write(toFile: directory.path("site.conf"), atomically: true, encoding: .utf8)

        let nginx = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-c", directory.path("nginx.conf")], in: directory, name: "nginx")
        defer {
            kill(nginx.process.processIdentifier, SIGTERM)
            _ = nginx.wait()
        }
        try await waitUntil("nginx", process: nginx) { GeoIPUpdaterTests.Fixture.accepts(port: port) }

        /// The statuses of `count` requests for `path`, one after another on one connection.
        func statuses(_ path: String, count: Int) throws -> [String] {
            let curl = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/curl"),
                ["-s", "-w", "%{http_code}\\n"] + (0..<count).flatMap { _ in ["-o", "/dev/null", "http://127.0.0.1:\(port)\(path)"] },
                in: directory, name: "curl-\(UUID().uuidString)")
            _ = curl.wait()
            return curl.stdout.split(separator: "\n").map(String.init)
        }
        let index = try statuses("/", count: burst + 20)
        #expect(index.count == burst + 20 && !index.contains("429"), "\(index)")
        let stats = try statuses("/api/sys/stats", count: burst + 20)
        #expect(stats.count == burst + 20)
        #expect(stats.prefix(burst + 1).allSatisfy { $0 == "502" }, "\(stats)")
        // At most one more let through, should a minute have passed.
        #expect(stats.dropFirst(burst + 1).filter { $0 == "429" }.count >= 18, "\(stats)")
        let daily = try statuses("/api/sys/stats/daily?from=2026-01-01&to=2026-01-02", count: 3)
        #expect(daily.filter { $0 == "429" }.count >= 2, "\(daily)")
    }

    /// The package brings the system's tz data (`tzdata`), which a minimal root may leave out, so that the
    /// server's own tools (`date`, PostgreSQL) agree on the zone; the counter's rules are the ICU data in its binary.
    @Test func thePackageDependsOnTheTimeZoneData() throws {
        let control = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/debian/control"), encoding: .utf8)
        let depends = control.split(separator: "\n").first { $0.hasPrefix("Depends:") }
        #expect(depends?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains("tzdata") == true, "\(String(describing: depends))")
    }

    /// The units with `ExecStart` pointed at this build, since `verify` checks that the program exists.
    func unitsForThisBuild(in directory: TemporaryDirectory) throws -> [String] {
        let executable = try visitorCounterExecutable().path
        return try ["visitor-counter.service", "visitor-counter.socket"].map { name in
            let text = try String(contentsOf: repositoryRoot.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            let path = directory.path(name)
            try text.replacingOccurrences(of: "/usr/local/bin/visitor-counter", with: executable)
                .write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    @Test func theUnitsPassSystemdVerify() throws {
        try requireProgram("/usr/bin/systemd-analyze")
        let directory = try TemporaryDirectory()
        let units = try unitsForThisBuild(in: directory)
        let verify = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"), ["verify"] + units, in: directory, name: "verify")
        #expect(verify.wait() == 0, "\(verify.stderr)")
        let complaints = verify.stderr.split(separator: "\n").filter { $0.contains("visitor-counter") }
        #expect(complaints.isEmpty, "\(complaints)")
    }

    /// The GeoIP updater's service and monthly timer, with `ExecStart` pointed at the repository's script.
    @Test func theGeoIPUpdaterUnitsPassSystemdVerify() throws {
        try requireProgram("/usr/bin/systemd-analyze")
        let directory = try TemporaryDirectory()
        let script = repositoryRoot.appendingPathComponent("deploy/visitor-counter-geoip-update").path
        let units = try ["visitor-counter-geoip-update.service", "visitor-counter-geoip-update.timer"].map { name in
            let text = try String(contentsOf: repositoryRoot.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/sbin/visitor-counter-geoip-update", with: script)
                .write(toFile: directory.path(name), atomically: true, encoding: .utf8)
            return directory.path(name)
        }
        let timer = try String(contentsOfFile: units[1], encoding: .utf8)
        #expect(timer.contains("OnCalendar=*-*-03 04:00:00"))
        let verify = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"), ["verify"] + units, in: directory, name: "verify")
        #expect(verify.wait() == 0, "\(verify.stderr)")
        let complaints = verify.stderr.split(separator: "\n").filter { $0.contains("visitor-counter") }
        #expect(complaints.isEmpty, "\(complaints)")
    }

    /// `systemd-analyze security`'s overall exposure of the unit file at `path`, from 0 (safe) to 10.
    func exposure(ofUnitAt path: String, in directory: TemporaryDirectory) throws -> Double {
        try requireProgram("/usr/bin/systemd-analyze")
        let security = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"), ["security", "--offline=true", path], in: directory,
            name: "security")
        _ = security.wait()
        let line = try #require(
            security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(security.stderr)")
        return try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
    }

    /// The counter's unit stays where it is (0.4 when written).
    @Test func theServiceIsRatedSafeBySystemd() throws {
        let directory = try TemporaryDirectory()
        let service = try unitsForThisBuild(in: directory)[0]
        let level = try exposure(ofUnitAt: service, in: directory)
        #expect(level <= 0.4)
    }

    /// The updater downloads what the network sends: it runs as an unprivileged user with network and its
    /// state directory only (1.2 when written; 5.3 when it ran as root). Its one privileged command, the
    /// `+` of `ExecStartPost=`, only reloads nginx.
    @Test func theGeoIPUpdaterIsRatedOKBySystemdAndRunsUnprivileged() throws {
        let directory = try TemporaryDirectory()
        let text = try String(
            contentsOf: repositoryRoot.appendingPathComponent("systemd/visitor-counter-geoip-update.service"), encoding: .utf8)
        let path = directory.path("visitor-counter-geoip-update.service")
        try text.replacingOccurrences(
            of: "/usr/sbin/visitor-counter-geoip-update",
            with: repositoryRoot.appendingPathComponent("deploy/visitor-counter-geoip-update").path
        ).write(toFile: path, atomically: true, encoding: .utf8)
        let level = try exposure(ofUnitAt: path, in: directory)
        #expect(level <= 1.5)

        let lines = text.split(separator: "\n")
        #expect(lines.contains("ExecStart=/usr/sbin/visitor-counter-geoip-update --no-reload"))
        #expect(lines.contains("User=visitor-counter-geoip"))
        #expect(!lines.contains { $0.hasPrefix("ExecStart=+") || $0.hasPrefix("ExecStart=!") })
        let privileged = lines.filter { $0.hasPrefix("ExecStartPost=") }
        #expect(privileged == ["ExecStartPost=+/bin/systemctl try-reload-or-restart nginx.service"])
    }
}
