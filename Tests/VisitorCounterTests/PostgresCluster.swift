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
///
/// A cluster can also be a streaming standby of another (``init(standbyOf:settings:)``), for failover
/// tests: killed as a crashed host is (``crash()``), and promoted (``promote()``).
final class PostgresCluster {
    static let binaries = "/usr/lib/postgresql/15/bin"

    let directory: URL
    /// Only names the socket file (`.s.PGSQL.<port>`): the cluster listens on no TCP address.
    let port: UInt16
    private var server: ChildProcess?
    private let logs: TemporaryDirectory
    /// Server settings given as `-c name=value` on its command line, so that a standby copied from this
    /// cluster does not inherit them (a synchronous standby list would make a promoted standby wait).
    private let settings: [String]

    var socketDirectory: String { directory.path }
    var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// A libpq URI for `database` as the `postgres` superuser, through the socket.
    func uri(database: String = "postgres") -> String {
        "postgresql:///\(database)?host=\(socketDirectory)&port=\(port)&user=postgres"
    }

    /// A new primary; `settings` are server settings (`name=value`), such as a synchronous standby list.
    init(settings: [String] = []) async throws {
        (logs, directory, port) = try Self.prepare()
        self.settings = settings
        let initdb = try asPostgres("initdb", ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        guard initdb.wait() == 0 else { throw TestFailure("initdb failed: \(initdb.stderr)") }
        try await start()
    }

    /// A hot standby of `primary`, copied with `pg_basebackup -R` (which writes the `primary_conninfo`
    /// through the primary's socket and the `standby.signal` file) and streaming from it.
    init(standbyOf primary: PostgresCluster, settings: [String] = []) async throws {
        try requireProgram("\(Self.binaries)/pg_basebackup")
        (logs, directory, port) = try Self.prepare()
        self.settings = settings
        let copy = try asPostgres(
            "pg_basebackup",
            ["-D", dataDirectory, "-h", primary.socketDirectory, "-p", "\(primary.port)", "-U", "postgres", "-R", "-X", "stream", "--no-sync"])
        guard copy.wait() == 0 else { throw TestFailure("pg_basebackup failed: \(copy.stderr)") }
        try await start()
    }

    /// The programs it needs, and its folder owned by `postgres` and a free port, or a message naming
    /// what is missing.
    private static func prepare() throws -> (TemporaryDirectory, URL, UInt16) {
        for program in ["initdb", "postgres"] { try requireProgram("\(Self.binaries)/\(program)") }
        try requireProgram("/usr/bin/setpriv")
        let logs = try TemporaryDirectory()
        let directory = URL(fileURLWithPath: "/tmp/visitor-counter-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        guard chown(directory.path, Self.postgresUser.uid, Self.postgresUser.gid) == 0 else {
            throw TestFailure("chown \(directory.path) to postgres: errno \(errno)")
        }
        return (logs, directory, try LocalStack.freePort())
    }

    deinit {
        try? stop(mode: .immediate)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the server and waits until it takes connections.
    func start() async throws {
        let server = try asPostgres(
            "postgres",
            ["-D", dataDirectory, "-k", socketDirectory, "-p", "\(port)", "-c", "listen_addresses=", "-c", "fsync=off"]
                + settings.flatMap { ["-c", $0] })
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

    /// Ends the server and every process of it with SIGKILL at once, as a host that loses power: no
    /// shutdown checkpoint, no last WAL sent to a standby, no answer to a commit in flight.
    func crash() {
        guard let server, server.process.isRunning else { return }
        let postmaster = server.process.processIdentifier
        // The children first: a backend that saw its postmaster gone first would still say so to its client.
        for pid in Self.children(of: postmaster) + [postmaster] { Glibc.kill(pid, SIGKILL) }
        _ = server.wait()
        self.server = nil
    }

    /// Freezes a synchronous primary with commits in flight that its standby has and no client was
    /// answered, as a primary that loses power between sending a commit to the standby and answering
    /// it: stops the WAL sender (SIGSTOP) for `seconds`, so that commits wait for the standby; then
    /// stops every other process of the server, lets the WAL sender go on until `standby` has received
    /// all the WAL, and answers how many commits were waiting. ``crash()`` ends the server then.
    func freezeWithUnansweredCommits(standby: PostgresCluster, after seconds: TimeInterval) async throws -> Int {
        guard let server else { throw TestFailure("the server is not running") }
        let watch = try PostgresConnection(uri: uri())
        guard let sender = try watch.execute("SELECT pid FROM pg_stat_replication").firstInteger.map(pid_t.init) else {
            throw TestFailure("no WAL sender: the cluster has no standby")
        }
        Glibc.kill(sender, SIGSTOP)
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        let waiting = try watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").firstInteger ?? 0
        let flushed = try watch.execute("SELECT pg_current_wal_flush_lsn()::text").rows.first?[0] ?? ""
        let postmaster = server.process.processIdentifier
        for pid in [postmaster] + Self.children(of: postmaster) where pid != sender { Glibc.kill(pid, SIGSTOP) }
        Glibc.kill(sender, SIGCONT)
        let reader = try PostgresConnection(uri: standby.uri())
        try await waitUntil("the standby receiving the primary's WAL up to \(flushed)", seconds: 60) {
            try reader.execute("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), $1::pg_lsn) >= 0", [flushed]).rows == [["t"]]
        }
        return waiting
    }

    /// Makes a standby the primary and waits until it takes writes (`pg_promote()` waits up to 60 s).
    func promote() throws {
        let connection = try PostgresConnection(uri: uri())
        guard try connection.execute("SELECT pg_promote()").rows == [["t"]] else {
            throw TestFailure("pg_promote() did not promote the standby within 60 s")
        }
    }

    /// Sends `signal` to a standby's WAL receiver, found in `pg_stat_wal_receiver`: SIGSTOP and SIGCONT
    /// hold up its replication as a slow link would.
    func signalWALReceiver(_ signal: Int32) throws {
        let connection = try PostgresConnection(uri: uri())
        guard let pid = try connection.execute("SELECT pid FROM pg_stat_wal_receiver").firstInteger else {
            throw TestFailure("no WAL receiver: the cluster is not a streaming standby")
        }
        guard Glibc.kill(pid_t(pid), signal) == 0 else { throw TestFailure("kill \(pid): errno \(errno)") }
    }

    /// The processes whose parent is `parent`, from `/proc`.
    private static func children(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[1]) == parent ? pid : nil
        }
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
