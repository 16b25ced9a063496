#if canImport(Glibc)
import Glibc
#endif

/// What of the visitor's address goes into `visitors.ip` (`--store-ip`). The country is looked up by
/// nginx before any of this, so it is the same in every mode.
public enum StoreIPMode: String, Sendable, CaseIterable, Codable {
    /// The address as it came, in canonical form: what the original design stores.
    case full
    /// IPv4 with its last octet zeroed (`203.0.113.0`), IPv6 with its last 80 bits zeroed (`2001:db8:1::`):
    /// the network, not the household.
    case truncated
    /// The day's keyed hash of the address: the same address gives the same value within a UTC day and
    /// an unrelated one the next; once the day's key is deleted, nobody can tell which address it was.
    case hashed
    /// Nothing: `NULL`.
    case none

    /// The value to store for `ip` (canonical, or `nil`), with `key` the visit's day's key.
    public func stored(_ ip: String?, key: [UInt8]?) -> String? {
        guard let ip else { return nil }
        switch self {
        case .full: return ip
        case .truncated: return Self.truncate(ip)
        case .hashed: return key.map { SipHash.hex(Array("ip\n\(ip)".utf8), key: $0) }
        case .none: return nil
        }
    }

    static func truncate(_ ip: String) -> String? {
        var address = in6_addr()
        let family = ip.utf8.contains(UInt8(ascii: ":")) ? AF_INET6 : AF_INET
        guard inet_pton(family, ip, &address) == 1 else { return nil }
        withUnsafeMutableBytes(of: &address) { bytes in
            // IPv4 fills the first 4 bytes: keep 3. IPv6: keep the first 48 bits.
            for index in (family == AF_INET ? 3..<4 : 6..<16) { bytes[index] = 0 }
        }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { text in
            inet_ntop(family, &address, text.baseAddress, socklen_t(text.count)).map { String(cString: $0) }
        }
    }
}
