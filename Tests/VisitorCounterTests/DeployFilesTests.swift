import Foundation
import Testing

/// The files a site owner installs: nginx must accept the site, systemd the units.
struct DeployFilesTests {
    @Test func theNginxSitePassesNginxT() throws {
        try requireProgram("/usr/sbin/nginx")
        let directory = try TemporaryDirectory()
        // Debian's nginx.conf includes sites-enabled/* inside http {}, after loading modules-enabled/*.
        try """
            load_module /usr/lib/nginx/modules/ngx_http_geoip_module.so;
            pid \(directory.path("nginx.pid"));
            error_log stderr;
            events {}
            http { include \(repositoryRoot.appendingPathComponent("deploy/nginx.conf").path); }
            """.write(toFile: directory.path("nginx.conf"), atomically: true, encoding: .utf8)
        let check = try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/nginx"), ["-t", "-c", directory.path("nginx.conf")], in: directory,
            name: "nginx-t")
        #expect(check.wait() == 0, "\(check.stderr)")
        #expect(check.stderr.contains("test is successful"))
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

    @Test func theServiceIsRatedSafeBySystemd() throws {
        try requireProgram("/usr/bin/systemd-analyze")
        let directory = try TemporaryDirectory()
        let service = try unitsForThisBuild(in: directory)[0]
        let security = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"), ["security", "--offline=true", service], in: directory,
            name: "security")
        _ = security.wait()
        let line = try #require(security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let level = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(level <= 1.5, "\(line)")
    }
}
