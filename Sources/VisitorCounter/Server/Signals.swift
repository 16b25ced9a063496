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
