import ArgumentParser
import Foundation
import Logging
import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the FastCGI responder: a main process and its worker processes.",
        discussion: """
            Without --listen, standard input must be a listening socket (systemd StandardInput=socket, \
            spawn-fcgi). Stop it with SIGTERM or SIGINT: every worker finishes its requests and writes \
            its visits before the process exits. SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT and SIGALRM are logged \
            and ignored. LOG_LEVEL=debug logs each batch written. Every option and why it has its default: \
            docs/options.md; stops, crashes and a failing database: docs/operations.md (in \
            /usr/share/doc/visitor-counter/ when installed).
            """
    )

    @Option(help: ArgumentHelp("unix:/path/to.sock or HOST:PORT. (default: the socket on standard input)", valueName: "unix:/path|host:port"))
    var listen: ListenAddress?

    @Option(parsing: .unconditional, help: "Worker processes; the default is one per core.")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp("Permissions of the unix socket file, in octal up to 0777: 0660 lets the socket's group (nginx) in.", valueName: "octal-mode"))
    var socketMode = OctalMode(0o660)

    @Option(help: "The group of the unix socket file, a name or a number: nginx's (www-data on Debian). (default: this user's group)")
    var socketGroup: String?

    @OptionGroup var options: CounterOptions

    func validate() throws {
        guard workers >= 1, workers <= 256 else { throw ValidationError("--workers must be from 1 to 256") }
        if socketGroup != nil, case .unix = listen {} else if socketGroup != nil {
            throw ValidationError("--socket-group is for --listen unix:/path; a socket unit sets it with SocketGroup=")
        }
    }

    func run() throws {
        // Before any thread starts, so every thread inherits the mask and only the supervisor's loop
        // takes these signals.
        Signals.block(Signals.stop + Signals.ignored + [SIGCHLD])
        // The database, its WAL files, journals and spill files hold visitors' addresses: none of them
        // world-readable, whatever umask `serve` was started with (systemd's unit sets 0077 itself).
        // Only ever stricter: a mask that already leaves more out stays. Workers inherit it.
        umask(umask(0) | 0o027)
        bootstrapLogging()
        let logger = Logger(label: "visitor-counter")

        let location = try options.storeLocation()
        if case .sqlite = location {
            try checkDirectory(location.localDirectory, named: "the database directory")
        } else {
            try checkDirectory(location.localDirectory, named: "the state directory (--state-directory)")
        }
        let indexPage = try options.indexPage()
        let address = listen ?? .inherited
        let socket: ListeningSocket
        do {
            socket = try ListeningSocket.open(
                address, mode: socketMode.permissions, group: socketGroup, allowsOtherHosts: options.allowList != nil)
        } catch {
            throw CommandError("cannot listen on \(address): \(error)")
        }
        // Opened (and migrated) once here, so a bad database stops `serve` before any worker starts.
        do {
            _ = try location.open(timeZone: options.calendar)
        } catch {
            socket.removeSocketFile()
            throw CommandError("cannot open the database \(location): \(error)")
        }

        logger.info(
            "starting",
            metadata: [
                "listen": "\(address)", "database": "\(location)", "workers": "\(workers)",
                "threads": "\(options.threads)", "flush_interval": "\(options.flushInterval)",
                "batch_size": "\(options.batchSize)", "stats_cache": "\(options.statsCache)",
                "buffer_limit": "\(options.bufferLimit)", "health_threshold": "\(options.healthThreshold)",
                "geoip_max_age_days": "\(options.geoipMaxAgeDays)", "time_zone": "\(options.calendar)",
            ])
        let board: WorkerStatusBoard
        do {
            board = try WorkerStatusBoard.create(workers: workers)
        } catch {
            socket.removeSocketFile()
            throw CommandError("cannot make the shared memory the health routes read: \(error)")
        }
        var template: Int32?
        if options.indexTemplate != nil {
            do {
                template = try indexPage.template.sharedCopy()
            } catch {
                socket.removeSocketFile()
                throw CommandError("cannot share the index template with the workers: \(error)")
            }
        }
        let supervisor: Supervisor
        do {
            supervisor = try Supervisor(
                socket: socket, board: board, template: template, workers: workers, executable: try Self.executablePath(),
                workerArguments: ["worker"], configuration: options.workerConfiguration(), hangTimeout: .seconds(options.hangTimeout),
                logger: logger)
        } catch {
            socket.removeSocketFile()
            throw CommandError("cannot open this program's own file to start workers from: \(error)")
        }
        supervisor.run()
    }

    /// The database's directory (or, for PostgreSQL, the state directory) must exist and be writable:
    /// SQLite creates the WAL files beside the file, and the journals and audit log go there.
    private func checkDirectory(_ directory: String, named name: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError("\(name) \(directory) does not exist")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw CommandError("\(name) \(directory) is not writable by this user")
        }
    }

    static func executablePath() throws -> String {
        do {
            return try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        } catch {
            throw CommandError("cannot find this program's own path to start workers: \(error)")
        }
    }
}

/// One worker process; `serve` starts these itself with the listening socket as standard input and the
/// worker's whole configuration on descriptor ``Supervisor/configurationDescriptor``.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve requests on the listening socket on standard input (started by serve).",
        shouldDisplay: false
    )

    func run() throws {
        bootstrapLogging()
        var logger = Logger(label: "visitor-counter.worker")
        logger[metadataKey: "worker.pid"] = "\(getpid())"
        let configuration: WorkerProcess.Configuration
        do {
            configuration = try WorkerProcess.Configuration(reading: Supervisor.configurationDescriptor)
        } catch {
            throw CommandError("worker: \(error)")
        }
        close(Supervisor.configurationDescriptor)
        logger[metadataKey: "worker.index"] = "\(configuration.index)"
        guard ListeningSocket.isListeningSocket(configuration.listeningDescriptor) else {
            throw CommandError("worker: standard input is not a listening socket; run `visitor-counter serve`")
        }
        do {
            try WorkerProcess.run(configuration, logger: logger)
        } catch {
            logger.error("worker failed", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }
}
