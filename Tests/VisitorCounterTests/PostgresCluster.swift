import Foundation
import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PostgreSQL 15 cluster of the test's own: made by `initdb` from Debian's `postgresql`
/// package and served by `postgres` itself, both run as the `postgres` user, listening only on a unix
/// socket in a temporary folder. No PostgreSQL service is assumed to be running. The server is stopped
/// and its folder removed when the value is dropped.
///
/// The server runs in the foreground as a child of the test rather than through `pg_ctl start`: `pg_ctl`
/// leaves a daemon that holds every descriptor it inherited, among them the socket through which
/// Foundation's `Process` learns that a child ended, so waiting for `pg_ctl` would wait for the server.
final class PostgresCluster {
    static let binaries = "/usr/lib/postgresql/15/bin"

    let directory: URL
    /// Only names the socket file (`.s.PGSQL.<port>`): the cluster listens on no TCP address.
    let port: UInt16
    private var server: ChildProcess?
    private let logs: TemporaryDirectory

    var socketDirectory: String { directory.path }
    var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// A libpq URI for `database` as the `postgres` superuser, through the socket.
    func uri(database: String = "postgres") -> String {
        "postgresql:///\(database)?host=\(socketDirectory)&port=\(port)&user=postgres"
    }

    init() async throws {
        for program in ["initdb", "postgres"] { try requireProgram("\(Self.binaries)/\(program)") }
        try requireProgram("/usr/bin/setpriv")
        logs = try TemporaryDirectory()
        directory = URL(fileURLWithPath: "/tmp/visitor-counter-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        guard chown(directory.path, Self.postgresUser.uid, Self.postgresUser.gid) == 0 else {
            throw TestFailure("chown \(directory.path) to postgres: errno \(errno)")
        }
        port = try LocalStack.freePort()
        let initdb = try asPostgres("initdb", ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        guard initdb.wait() == 0 else { throw TestFailure("initdb failed: \(initdb.stderr)") }
        try await start()
    }

    deinit {
        try? stop(mode: .immediate)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the server and waits until it takes connections.
    func start() async throws {
        let server = try asPostgres(
            "postgres",
            ["-D", dataDirectory, "-k", socketDirectory, "-p", "\(port)", "-c", "listen_addresses=", "-c", "fsync=off"])
        self.server = server
        try await waitUntil("postgres taking connections", seconds: 60, process: server) {
            (try? PostgresConnection(uri: uri())) != nil
        }
    }

    /// How to stop the server, by the signals `pg_ctl stop -m` sends.
    enum StopMode: Int32 {
        /// Rolls back open transactions and shuts down cleanly, as an operator's stop does.
        case fast = 2  // SIGINT
        /// Ends every process at once, with recovery at the next start, as a crash does.
        case immediate = 3  // SIGQUIT
    }

    func stop(mode: StopMode = .fast) throws {
        guard let server, server.process.isRunning else { return }
        kill(server.process.processIdentifier, mode.rawValue)
        _ = server.wait()
        self.server = nil
    }

    private func asPostgres(_ program: String, _ arguments: [String]) throws -> ChildProcess {
        let user = Self.postgresUser
        return try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/setpriv"),
            ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "\(Self.binaries)/\(program)"] + arguments,
            in: logs, name: "\(program)-\(UUID().uuidString.prefix(8))")
    }

    private static var postgresUser: (uid: uid_t, gid: gid_t) {
        guard let entry = getpwnam("postgres") else { return (0, 0) }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }
}
