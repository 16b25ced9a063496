#if canImport(Glibc)
import Glibc
#endif

/// The process-wide signal setup both the supervisor and the workers use.
///
/// Stop signals are blocked in every thread (threads inherit the mask, so this runs before any thread
/// starts) and taken one at a time with `sigwait` by the thread that owns the stop; no handler runs
/// in an arbitrary thread.
public enum Signals {
    public static let stop: [Int32] = [SIGTERM, SIGINT]
    /// Signals an operator or a stray `kill` may send that must neither stop the service nor lose a
    /// visit: taken and logged like the stop signals, and otherwise ignored. SIGHUP has nothing to
    /// reload: the options are read at the start, and the audit log is opened for each entry, so a
    /// rotated file needs no signal. SIGUSR1 would otherwise reach libfcgi's handler, after which its
    /// accept fails for good.
    public static let ignored: [Int32] = [SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGALRM]

    /// Puts back the default action of the signals `FCGX_Init` installs handlers for (SIGTERM and
    /// SIGUSR1, which only set libfcgi's shutdown flag); they are blocked and taken with
    /// ``wait(for:timeout:)``, so the default action never runs.
    public static func undoLibraryHandlers() {
        signal(SIGTERM, SIG_DFL)
        signal(SIGUSR1, SIG_DFL)
    }

    /// Blocks `signals` in the calling thread and in every thread it starts from now on.
    public static func block(_ signals: [Int32]) {
        var set = makeSet(signals)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// A write to a connection nginx closed then fails with `EPIPE` instead of ending the process.
    public static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for one of `signals`, which must be blocked; `timeout` `nil` waits for ever.
    /// Answers the signal, or `nil` when the time ran out.
    public static func wait(for signals: [Int32], timeout: Duration?) -> Int32? {
        var set = makeSet(signals)
        guard let timeout else {
            var received: Int32 = 0
            while sigwait(&set, &received) != 0 {}
            return received
        }
        let nanoseconds = max(0, timeout.inNanoseconds)
        var time = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        let received = sigtimedwait(&set, nil, &time)
        return received > 0 ? received : nil
    }

    static func makeSet(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }
}
