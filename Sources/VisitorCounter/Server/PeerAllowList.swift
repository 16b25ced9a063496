#if canImport(Glibc)
import Glibc
#endif

/// The addresses that may connect to a TCP listening socket (`--allowed-clients`), the convention of
/// PHP-FPM's `listen.allowed_clients` and libfcgi's `FCGI_WEB_SERVER_ADDRS`: a comma-separated list
/// of IPv4 and IPv6 addresses. A worker closes any other peer as soon as it accepts it, before
/// reading a byte.
public struct PeerAllowList: Equatable, Sendable, CustomStringConvertible {
    /// Each address as 16 bytes, IPv4 as IPv4-mapped IPv6, so a peer of a dual-stack socket compares equal.
    private let addresses: [[UInt8]]
    public let description: String

    /// Parses `192.0.2.10,2001:db8::1`; `nil` when an entry is not an address.
    public init?(argument: String) {
        var addresses: [[UInt8]] = []
        for entry in argument.split(separator: ",") {
            guard let bytes = Self.bytes(of: entry.filter { $0 != " " }) else { return nil }
            addresses.append(bytes)
        }
        guard !addresses.isEmpty else { return nil }
        self.addresses = addresses
        self.description = argument
    }

    /// Whether the peer of an accepted connection, as `accept` filled `address`, is on the list.
    /// A unix socket's peer is always allowed: the socket file's permissions decide who connects.
    public func allows(_ address: sockaddr_storage) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return true }
        return addresses.contains(bytes)
    }

    /// Whether `host` is a loopback address (`127.0.0.0/8`, `::1`), which only this machine can reach.
    public static func isLoopback(_ host: String) -> Bool {
        guard let bytes = bytes(of: host) else { return false }
        return bytes == [UInt8](repeating: 0, count: 15) + [1] || (isMappedIPv4(bytes) && bytes[12] == 127)
    }

    /// The peer's address in words, for the log.
    public static func describe(_ address: sockaddr_storage) -> String {
        guard let bytes = bytes(of: address) else { return "a unix socket peer" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if isMappedIPv4(bytes) {
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12...]) }
            inet_ntop(AF_INET, &v4, &text, socklen_t(text.count))
        } else {
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
            inet_ntop(AF_INET6, &v6, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func isMappedIPv4(_ bytes: [UInt8]) -> Bool {
        bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
    }

    private static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + withUnsafeBytes(of: v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }

    private static func bytes(of address: sockaddr_storage) -> [UInt8]? {
        var address = address
        switch Int32(address.ss_family) {
        case AF_INET:
            let v4 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in.self) }
            return [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + withUnsafeBytes(of: v4.sin_addr) { Array($0) }
        case AF_INET6:
            let v6 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in6.self) }
            return withUnsafeBytes(of: v6.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }
}
