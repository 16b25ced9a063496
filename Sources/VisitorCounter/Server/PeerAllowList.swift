#if canImport(Glibc)
import Glibc
#endif

/// The addresses that may connect to a TCP listening socket (`--allowed-clients`), the convention of
/// PHP-FPM's `listen.allowed_clients` and libfcgi's `FCGI_WEB_SERVER_ADDRS`: a comma-separated list
/// of IPv4 and IPv6 addresses. A worker closes any other peer as soon as it accepts it, before
/// reading a byte.
public struct PeerAllowList: Equatable, Sendable, CustomStringConvertible {
    /// Each address as IPv6, IPv4 mapped (``IPAddress/mapped``), so a peer of a dual-stack socket compares equal.
    private let addresses: [IPAddress]
    public let description: String

    /// Parses `192.0.2.10,2001:db8::1`; `nil` when an entry is not an address.
    public init?(argument: String) {
        var addresses: [IPAddress] = []
        for entry in argument.split(separator: ",") {
            guard let address = IPAddress(entry.filter { $0 != " " }) else { return nil }
            addresses.append(address.mapped)
        }
        guard !addresses.isEmpty else { return nil }
        self.addresses = addresses
        self.description = argument
    }

    /// Whether the peer of an accepted connection, as `accept` filled `address`, is on the list.
    /// A unix socket's peer is always allowed: the socket file's permissions decide who connects.
    public func allows(_ address: sockaddr_storage) -> Bool {
        guard let peer = IPAddress(address) else { return true }
        return addresses.contains(peer.mapped)
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
