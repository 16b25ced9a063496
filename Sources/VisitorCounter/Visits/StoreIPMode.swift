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
    /// The day's keyed hash of the address: the same address gives the same value within a local day
    /// (`--time-zone`) and an unrelated one the next; once the day's key is deleted, nobody can tell
    /// which address it was.
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
        guard let address = IPAddress(ip) else { return nil }
        // IPv4: keep 3 bytes. IPv6: keep the first 48 bits.
        return address.zeroed(from: address.isIPv4 ? 3 : 6).description
    }
}
