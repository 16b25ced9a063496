#if canImport(Glibc)
import Glibc
#endif

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine, so a worker's
/// heartbeat on the shared status board means the same to the supervisor, and an atomic `Int64`
/// holds it where a `ContinuousClock.Instant` would not fit.
public enum MonotonicTime {
    public static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
