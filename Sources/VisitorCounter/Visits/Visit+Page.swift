/// The page a visit is counted under and the site it came from: strings from the Internet, bounded
/// here before they reach a journal, a batch or the database.
extension Visit {
    /// The counter's own page, and the path of every visit recorded before pages were counted.
    public static let indexPath = "/"
    /// Longer paths (after ``normalisedPath(_:)`` has percent-encoded them) count under ``longPath``.
    public static let maxPathBytes = 256
    /// Where a path longer than ``maxPathBytes`` counts: a scanner's made-up long names share one entry.
    public static let longPath = "(long)"
    /// Where a path that does not start with `/` counts; nginx's `$uri` always does.
    public static let invalidPath = "(invalid)"
    /// The longest host name DNS allows.
    public static let maxHostBytes = 253

    /// The path as counted: nginx's `$uri` (decoded, normalised, without the query), with every byte
    /// outside printable ASCII, the space and `%` percent-encoded, so that what is stored and shown is
    /// printable ASCII and the same path always gives the same text. Longer than ``maxPathBytes``
    /// after that: ``longPath``.
    public static func normalisedPath<Bytes: Collection<UInt8>>(_ raw: Bytes) -> String {
        guard raw.first == UInt8(ascii: "/") else { return invalidPath }
        // The usual case: short and printable, kept as it is.
        if raw.count <= maxPathBytes, raw.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "%") }) {
            return String(decoding: raw, as: UTF8.self)
        }
        var encoded: [UInt8] = []
        encoded.reserveCapacity(min(raw.count * 3, maxPathBytes + 3))
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in raw {
            if (0x21...0x7E).contains(byte) && byte != UInt8(ascii: "%") {
                encoded.append(byte)
            } else {
                encoded += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
            if encoded.count > maxPathBytes { return longPath }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// The host of `referer` when it is an `http` or `https` URL of another site than `siteHost` (the
    /// request's `Host`, compared without case and without a port), in lower case, without port, user,
    /// path or query; `nil` for anything else: no header, an invalid value, a host longer than
    /// ``maxHostBytes`` or with bytes other than letters, digits, `.` and `-`, or the site itself.
    public static func referrerHost(_ referer: [UInt8], siteHost: [UInt8]) -> String? {
        var rest = referer[...]
        func dropScheme(_ scheme: String) -> Bool {
            let prefix = rest.prefix(scheme.utf8.count)
            guard prefix.elementsEqual(scheme.utf8, by: { $0 | 0x20 == $1 }) else { return false }
            rest = rest.dropFirst(scheme.utf8.count)
            return true
        }
        guard dropScheme("https://") || dropScheme("http://") else { return nil }
        // The authority ends at the first `/`, `?` or `#`; a user's part ends at its last `@`.
        var authority = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[authority.index(after: at)...] }
        guard let host = hostWithoutPort(authority), host != hostWithoutPort(siteHost[...]) else { return nil }
        return host
    }

    /// `raw` without its `:port`, in lower case, when it is a host name of `[a-z0-9.-]` of 1 to
    /// ``maxHostBytes`` bytes; `nil` otherwise (an IPv6 literal in brackets too).
    static func hostWithoutPort<Bytes: Collection<UInt8>>(_ raw: Bytes) -> String? {
        let host = raw.prefix { $0 != UInt8(ascii: ":") }
        guard (1...maxHostBytes).contains(host.count) else { return nil }
        var lower: [UInt8] = []
        lower.reserveCapacity(host.count)
        for byte in host {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"):
                lower.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                lower.append(byte | 0x20)
            default:
                return nil
            }
        }
        // A trailing dot names the same host.
        if lower.last == UInt8(ascii: ".") { lower.removeLast() }
        guard !lower.isEmpty, lower.first != UInt8(ascii: "."), lower.first != UInt8(ascii: "-") else { return nil }
        return String(decoding: lower, as: UTF8.self)
    }
}
