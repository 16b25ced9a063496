#if canImport(Glibc)
import Glibc
#endif

/// A comma-separated list of IPv4 and IPv6 addresses and CIDR ranges (`192.0.2.10,198.51.100.0/24,
/// 2001:db8::/48`): the peers that may connect to a TCP listening socket (`--allowed-clients`, the
/// convention of PHP-FPM's `listen.allowed_clients` and libfcgi's `FCGI_WEB_SERVER_ADDRS`), and the
/// owner's addresses whose requests are not counted (`--ignore-ips`). A worker closes any other peer
/// as soon as it accepts it, before reading a byte.
public struct PeerAllowList: Equatable, Sendable, CustomStringConvertible {
    /// Each entry as an IPv6 network, IPv4 mapped (``IPAddress/mapped``, the prefix 96 longer), so a
    /// peer of a dual-stack socket compares equal; a single address is a network of 128 bits.
    private let networks: [Network]
    public let description: String

    private struct Network: Equatable, Sendable {
        var address: IPAddress
        var prefix: Int

        func contains(_ other: IPAddress) -> Bool {
            for index in 0..<16 {
                let bits = min(8, max(0, prefix - index * 8))
                let mask: UInt8 = bits == 0 ? 0 : ~UInt8(0) << (8 - bits)
                if address.bytes[index] & mask != other.bytes[index] & mask { return false }
            }
            return true
        }
    }

    /// An entry that is neither an address nor a CIDR range with a prefix that fits it.
    public struct BadEntry: Error, Equatable, CustomStringConvertible {
        public var entry: String
        public var description: String {
            entry.isEmpty
                ? "the list is empty"
                : "'\(entry)' is not an IPv4 or IPv6 address or CIDR range (such as 192.0.2.7, 198.51.100.0/24 or 2001:db8::/32)"
        }
    }

    /// Parses `192.0.2.10,198.51.100.0/24,2001:db8::/32`, spaces around entries allowed; throws for
    /// the first entry that is not an address or a range (a range's host bits may be set: they are
    /// ignored, as nginx's `allow` does).
    public init(parsing argument: String) throws(BadEntry) {
        var networks: [Network] = []
        for entry in argument.split(separator: ",") {
            let text = entry.filter { $0 != " " }
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = IPAddress(String(parts[0])) else { throw BadEntry(entry: text) }
            let bits = address.isIPv4 ? 32 : 128
            var prefix = bits
            if parts.count == 2 {
                guard let given = Int(parts[1]), given >= 0, given <= bits, parts[1].allSatisfy(\.isASCII) else {
                    throw BadEntry(entry: text)
                }
                prefix = given
            }
            networks.append(Network(address: address.mapped, prefix: prefix + 128 - bits))
        }
        guard !networks.isEmpty else { throw BadEntry(entry: "") }
        self.networks = networks
        self.description = argument
    }

    /// ``init(parsing:)``, `nil` for a list with a bad entry.
    public init?(argument: String) {
        guard let list = try? PeerAllowList(parsing: argument) else { return nil }
        self = list
    }

    /// Whether the peer of an accepted connection, as `accept` filled `address`, is on the list.
    /// A unix socket's peer is always allowed: the socket file's permissions decide who connects.
    public func allows(_ address: sockaddr_storage) -> Bool {
        guard let peer = IPAddress(address) else { return true }
        return contains(peer)
    }

    /// Whether `address` is one of the list's addresses or in one of its ranges.
    public func contains(_ address: IPAddress) -> Bool {
        let mapped = address.mapped
        return networks.contains { $0.contains(mapped) }
    }

    /// Whether `host` is a loopback address (`127.0.0.0/8`, `::1`), which only this machine can reach.
    public static func isLoopback(_ host: String) -> Bool {
        guard let address = IPAddress(host)?.unmapped else { return false }
        return address.isIPv4 ? address.bytes[0] == 127 : address.bytes == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// The peer's address in words, for the log.
    public static func describe(_ address: sockaddr_storage) -> String {
        guard let address = IPAddress(address) else { return "a unix socket peer" }
        return address.unmapped.description
    }
}
