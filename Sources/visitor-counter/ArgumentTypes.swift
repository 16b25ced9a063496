import ArgumentParser
import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

// Every option value is parsed once, here, by ArgumentParser: a bad value is refused with the option's
// name, and for a fixed set of values the list of them, before any command runs.

extension StoreIPMode: ExpressibleByArgument {}

extension Exporter.Format: ExpressibleByArgument {}

/// `unix:/absolute/path` or `HOST:PORT` (``ListenAddress/init(argument:)``).
extension ListenAddress: ExpressibleByArgument {}

/// Comma-separated IPv4 and IPv6 addresses (``PeerAllowList/init(argument:)``).
extension PeerAllowList: ExpressibleByArgument {}

/// A day given as `YYYY-MM-DD`, for `export --from` and `--to`: a local day of the zone the database records.
struct DayArgument: ExpressibleByArgument {
    /// Days since 1970-01-01.
    let day: Int
    let text: String

    init?(argument: String) {
        guard let day = UTCTimestamp.parseDay(argument) else { return nil }
        self.day = day
        self.text = argument
    }
}

/// Permission bits given in octal, up to 0777, for `serve --socket-mode`.
struct OctalMode: ExpressibleByArgument {
    let permissions: mode_t

    init(_ permissions: mode_t) { self.permissions = permissions }

    init?(argument: String) {
        guard let bits = UInt32(argument, radix: 8), bits <= 0o777 else { return nil }
        self.permissions = mode_t(bits)
    }

    var defaultValueDescription: String { "0" + String(permissions, radix: 8) }
}
