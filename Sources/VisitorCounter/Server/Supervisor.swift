import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The main process of `serve`: starts the worker processes on the shared listening socket, replaces a
/// worker that dies, and on SIGTERM or SIGINT stops them all and waits for each to write its visits.
///
/// Workers are started fresh with `posix_spawn` (never `fork` of a process with threads), with the
/// listening socket as their standard input, the way spawn-fcgi and systemd hand it over. The
/// supervisor itself runs one thread that takes signals with `sigtimedwait`.
///
/// Each worker gets its whole configuration as one JSON value (``WorkerProcess/Configuration``) on
/// descriptor ``configurationDescriptor``: a pipe filled and closed before the worker starts, so the
/// worker reads it to its end and nothing waits on a worker that dies early.
///
/// A worker whose request threads stop showing on the board (``WorkerStatusBoard/beat(at:)``) for
/// `hangTimeout` is killed with SIGKILL and replaced like one that died: a worker stopped by a signal,
/// stuck in a crash handler or blocked for good answers nothing, yet would never exit. Workers run with
/// `SWIFT_BACKTRACE=enable=no` unless the environment sets it: Swift's backtracer would take a crash's
/// signal and keep the process, where the default action ends it and lets its journal and this process
/// do their work.
///
/// It spawns the executable it opened at its start (`/proc/self/exe`, run through
/// `/proc/self/fd/N`), not the path: a package upgrade that replaced the file meanwhile does not
/// make a replaced worker run another build than the main process and its other workers.
public final class Supervisor {
    private struct Slot {
        var pid: pid_t?
        var startedAt = ContinuousClock.now
        var quickDeaths = 0
        var restartAt: ContinuousClock.Instant?
        /// Killed for not answering, and not reaped yet.
        var killedAsHung = false
    }

    private let socket: ListeningSocket
    private let board: WorkerStatusBoard?
    private let template: Int32?
    private let executable: String
    /// This program's file, opened at the start: what every worker runs.
    private let executableDescriptor: Int32
    private let workerArguments: [String]
    private let configuration: WorkerProcess.Configuration
    private let hangTimeout: Duration
    private let logger: Logger
    private var slots: [Slot]
    private var stopping = false

    /// A worker that dies sooner than this after its start counts as a crash loop and waits longer.
    static let stableAfter: Duration = .seconds(30)
    static let firstRestartDelay: Duration = .milliseconds(500)
    static let maxRestartDelay: Duration = .seconds(30)
    /// Where a worker finds the ``WorkerStatusBoard``: the descriptor after standard error.
    public static let boardDescriptor: Int32 = 3
    /// Where a worker finds an owner's index template (``IndexTemplate/sharedCopy()``).
    public static let templateDescriptor: Int32 = 4
    /// Where a worker reads its ``WorkerProcess/Configuration``.
    public static let configurationDescriptor: Int32 = 5

    /// - Parameters:
    ///   - board: shared with every worker as descriptor ``boardDescriptor``; a dead worker's slot is cleared.
    ///   - template: an owner's index template, shared with every worker as descriptor ``templateDescriptor``.
    ///   - workerArguments: the arguments (after the executable) that start a worker.
    ///   - configuration: what every worker gets, with its own ``WorkerProcess/Configuration/index`` and the
    ///     descriptors set here.
    ///   - executable: the name workers get as `argv[0]`; the file run is the one this process runs.
    ///   - hangTimeout: how long a worker may go without a heartbeat on `board` before it is killed.
    public init(
        socket: ListeningSocket, board: WorkerStatusBoard?, template: Int32? = nil, workers: Int, executable: String,
        workerArguments: [String], configuration: WorkerProcess.Configuration, hangTimeout: Duration = .seconds(30),
        logger: Logger
    ) throws {
        let opened = try systemCall("open", "/proc/self/exe") { open("/proc/self/exe", O_RDONLY | O_CLOEXEC) }
        defer { close(opened) }
        // Above the descriptors a worker gets (up to ``configurationDescriptor``): the child opens
        // `/proc/self/fd/N` after they are in place, and a low N would name one of them instead.
        self.executableDescriptor = try systemCall("fcntl", "F_DUPFD_CLOEXEC") {
            fcntl(opened, F_DUPFD_CLOEXEC, Self.configurationDescriptor + 1)
        }
        self.socket = socket
        self.board = board
        self.template = template
        self.executable = executable
        self.workerArguments = workerArguments
        var configuration = configuration
        configuration.statusDescriptor = board == nil ? nil : Self.boardDescriptor
        configuration.listeningDescriptor = 0
        self.configuration = configuration
        self.hangTimeout = hangTimeout
        self.logger = logger
        self.slots = Array(repeating: Slot(), count: workers)
    }

    /// The delay before restarting a worker that died after `quickDeaths` quick deaths in a row.
    static func restartDelay(quickDeaths: Int) -> Duration {
        let doubled = firstRestartDelay * (1 << min(max(quickDeaths - 1, 0), 10))
        return min(doubled, maxRestartDelay)
    }

    /// Runs until a stop signal has been handled and every worker has exited. Stop signals, the ignored
    /// ones and SIGCHLD must already be blocked (``Signals/block(_:)``) before the process started any thread.
    public func run() {
        for index in slots.indices { spawn(index) }
        while true {
            // At least once a second, to look at the heartbeats.
            let timeout = min(nextRestart().map { $0 - .now } ?? .seconds(1), .seconds(1))
            switch Signals.wait(for: Signals.stop + Signals.ignored + [SIGCHLD], timeout: timeout) {
            case SIGCHLD:
                reapWorkers()
            case .some(let signal) where Signals.ignored.contains(signal):
                logger.info("signal ignored", metadata: ["signal": "\(signal)"])
            case .some(let signal):
                if !stopping { logger.info("stopping workers", metadata: ["signal": "\(signal)"]) }
                stopping = true
                for slot in slots { if let pid = slot.pid { signalWorker(pid, SIGTERM) } }
            case nil:
                reapWorkers()
            }
            if stopping {
                if slots.allSatisfy({ $0.pid == nil }) { break }
                continue
            }
            killHungWorkers()
            for index in slots.indices {
                if let due = slots[index].restartAt, due <= .now { spawn(index) }
            }
        }
        socket.removeSocketFile()
        logger.info("stopped")
    }

    /// Kills each worker whose last heartbeat is older than ``hangTimeout``. A worker is watched from its
    /// first heartbeat on, so a slow start (a long journal to replay, say) is not taken for a hang.
    private func killHungWorkers() {
        guard let board else { return }
        let cutoff = MonotonicTime.now() - hangTimeout.inNanoseconds
        for index in slots.indices {
            guard let pid = slots[index].pid, !slots[index].killedAsHung, let beat = board.lastBeat(at: index), beat < cutoff
            else { continue }
            logger.error(
                "worker stopped answering, killing it",
                metadata: ["worker.index": "\(index)", "worker.pid": "\(pid)", "hang_timeout": "\(hangTimeout)"])
            if signalWorker(pid, SIGKILL) { slots[index].killedAsHung = true }
        }
    }

    /// Sends `signal` to a worker; whether it went. A worker that has exited already (`ESRCH`) is not
    /// an error: its SIGCHLD is on its way and the reaper takes it. Any other failure is logged, and
    /// the worker is left as it is.
    @discardableResult
    private func signalWorker(_ pid: pid_t, _ signal: Int32) -> Bool {
        do {
            try systemCall("kill", "\(pid) with signal \(signal)") { kill(pid, signal) }
            return true
        } catch let error as SystemCallError where error.errno == ESRCH {
            return false
        } catch {
            logger.error("cannot signal a worker", metadata: ["worker.pid": "\(pid)", "error": "\(error)"])
            return false
        }
    }

    private func nextRestart() -> ContinuousClock.Instant? {
        slots.compactMap(\.restartAt).min()
    }

    private func spawn(_ index: Int) {
        slots[index].restartAt = nil
        do {
            var configuration = configuration
            configuration.index = index
            let pid = try spawnProcess(configuration: try configuration.encoded())
            slots[index].pid = pid
            slots[index].startedAt = .now
            logger.info("worker started", metadata: ["worker.index": "\(index)", "worker.pid": "\(pid)"])
        } catch {
            logger.error("cannot start worker", metadata: ["worker.index": "\(index)", "error": "\(error)"])
            scheduleRestart(index)
        }
    }

    private func reapWorkers() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            guard let index = slots.firstIndex(where: { $0.pid == pid }) else { continue }
            slots[index].pid = nil
            slots[index].killedAsHung = false
            board?.clear(index)
            let outcome = Self.describe(status: status)
            if stopping {
                logger.info("worker exited", metadata: ["worker.index": "\(index)", "worker.pid": "\(pid)", "worker.status": "\(outcome)"])
                continue
            }
            logger.error("worker died, restarting it", metadata: ["worker.index": "\(index)", "worker.pid": "\(pid)", "worker.status": "\(outcome)"])
            scheduleRestart(index)
        }
    }

    private func scheduleRestart(_ index: Int) {
        let lived = ContinuousClock.now - slots[index].startedAt
        slots[index].quickDeaths = lived < Self.stableAfter ? slots[index].quickDeaths + 1 : 1
        let delay = Self.restartDelay(quickDeaths: slots[index].quickDeaths)
        slots[index].restartAt = .now + delay
    }

    /// `exit 3` or `signal 9`, from a `waitpid` status (whose macros Swift cannot import).
    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        return signal == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(signal)"
    }

    /// A pipe's read end that holds `bytes` and whose write end is closed.
    private static func filledPipe(_ bytes: [UInt8]) throws -> Int32 {
        var ends: [Int32] = [0, 0]
        _ = try systemCall("pipe", "a worker's configuration") { pipe(&ends) }
        defer { close(ends[1]) }
        do {
            // Set apart from `pipe` (Swift's Glibc has no `pipe2`): only this thread spawns processes.
            for end in ends { _ = try systemCall("fcntl", "F_SETFD") { fcntl(end, F_SETFD, FD_CLOEXEC) } }
            _ = try systemCall("fcntl", "F_SETFL") { fcntl(ends[1], F_SETFL, O_NONBLOCK) }
            // A pipe holds at least a page, usually 64 KiB, unless made larger; the write end does not block, so a value
            // that still does not fit fails here instead of waiting for a worker to read it.
            if bytes.count > 4096 {
                _ = try systemCall("fcntl", "F_SETPIPE_SZ \(bytes.count)") { fcntl(ends[1], Self.setPipeSize, Int32(bytes.count)) }
            }
            try FileDescriptor.writeAll(bytes, to: ends[1], subject: "a worker's configuration")
        } catch {
            close(ends[0])
            throw error
        }
        return ends[0]
    }

    /// This process's environment, with `SWIFT_BACKTRACE=enable=no` unless it sets `SWIFT_BACKTRACE`.
    static var workerEnvironment: [String] {
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        return environment.contains { $0.hasPrefix("SWIFT_BACKTRACE=") } ? environment : environment + ["SWIFT_BACKTRACE=enable=no"]
    }

    /// Linux's `F_SETPIPE_SZ`, which Swift's Glibc module does not export.
    private static let setPipeSize: Int32 = 1031

    private func spawnProcess(configuration: [UInt8]) throws -> pid_t {
        let configurationPipe = try Self.filledPipe(configuration)
        defer { close(configurationPipe) }
        // Each of these fails only for want of memory or a bad descriptor; the spawn is then not tried,
        // and `spawn` logs the error and schedules the next try.
        var actions = posix_spawn_file_actions_t()
        try systemCallReturningError("posix_spawn_file_actions_init") { posix_spawn_file_actions_init(&actions) }
        defer { posix_spawn_file_actions_destroy(&actions) }
        var duplicates = [(socket.descriptor, Int32(0))]
        if let board { duplicates.append((board.descriptor, Self.boardDescriptor)) }
        if let template { duplicates.append((template, Self.templateDescriptor)) }
        duplicates.append((configurationPipe, Self.configurationDescriptor))
        for (descriptor, number) in duplicates {
            try systemCallReturningError("posix_spawn_file_actions_adddup2", "\(descriptor) to \(number)") {
                posix_spawn_file_actions_adddup2(&actions, descriptor, number)
            }
        }

        var attributes = posix_spawnattr_t()
        try systemCallReturningError("posix_spawnattr_init") { posix_spawnattr_init(&attributes) }
        defer { posix_spawnattr_destroy(&attributes) }
        // The ignored signals stay blocked from the worker's first instruction, as their default
        // action would end it before it takes them itself.
        var workerMask = Signals.makeSet(Signals.ignored)
        var defaults = Signals.makeSet(Signals.stop + [SIGCHLD, SIGPIPE])
        try systemCallReturningError("posix_spawnattr_setsigmask") { posix_spawnattr_setsigmask(&attributes, &workerMask) }
        try systemCallReturningError("posix_spawnattr_setsigdefault") { posix_spawnattr_setsigdefault(&attributes, &defaults) }
        try systemCallReturningError("posix_spawnattr_setflags") {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        }

        let argv = ([executable] + workerArguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The child still has the descriptor when it calls execve (close-on-exec closes it only after
        // the kernel has opened the file), so the path names the file opened at the start.
        let file = "/proc/self/fd/\(executableDescriptor)"
        let environment = Self.workerEnvironment.map { strdup($0) } + [nil]
        defer { environment.forEach { free($0) } }
        var pid: pid_t = 0
        try systemCallReturningError("posix_spawn", "\(executable) (\(file))") {
            posix_spawn(&pid, file, &actions, &attributes, argv, environment)
        }
        return pid
    }
}
