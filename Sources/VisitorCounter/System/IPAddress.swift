#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as its bytes, parsed (`inet_pton`) and written (`inet_ntop`) in this one
/// place: visits keep the canonical text, `--store-ip truncated` zeroes its host bytes, and the
/// listening socket and the peer check work on the bytes.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6, in network order.
    public private(set) var bytes: [UInt8]

    /// Parses IPv4 (`192.0.2.7`) or IPv6 (`2001:db8::1`, `::ffff:192.0.2.7`) text; `nil` for anything else,
    /// host names, ports, zone indexes and surrounding spaces included.
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
    }

    /// The address of `bytes`; `nil` unless there are 4 or 16.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The peer address `accept` filled in; `nil` for a unix socket's peer.
    public init?(_ address: sockaddr_storage) {
        var address = address
        switch Int32(address.ss_family) {
        case AF_INET:
            let v4 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in.self) }
            bytes = withUnsafeBytes(of: v4.sin_addr) { Array($0) }
        case AF_INET6:
            let v6 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in6.self) }
            bytes = withUnsafeBytes(of: v6.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }

    /// The address and `port` as `bind` takes them: the socket address and its length.
    public func socketAddress(port: UInt16) -> (storage: sockaddr_storage, length: socklen_t) {
        func stored<Address>(_ address: Address) -> (storage: sockaddr_storage, length: socklen_t) {
            var storage = sockaddr_storage()
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            return (storage, socklen_t(MemoryLayout<Address>.size))
        }
        if isIPv4 {
            var v4 = sockaddr_in()
            (v4.sin_family, v4.sin_port) = (sa_family_t(AF_INET), port.bigEndian)
            withUnsafeMutableBytes(of: &v4.sin_addr) { $0.copyBytes(from: bytes) }
            return stored(v4)
        }
        var v6 = sockaddr_in6()
        (v6.sin6_family, v6.sin6_port) = (sa_family_t(AF_INET6), port.bigEndian)
        withUnsafeMutableBytes(of: &v6.sin6_addr) { $0.copyBytes(from: bytes) }
        return stored(v6)
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 { isIPv4 ? AF_INET : AF_INET6 }

    /// The canonical text: IPv6 compressed and in lower case, as `inet_ntop` writes it.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = self.family
        bytes.withUnsafeBytes { address in _ = inet_ntop(family, address.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// As IPv6, an IPv4 address mapped (`::ffff:192.0.2.7`), so that an IPv4 peer of a dual-stack
    /// socket compares equal to the same address given as IPv4.
    public var mapped: IPAddress {
        isIPv4 ? IPAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + bytes)! : self
    }

    /// An IPv4-mapped IPv6 address as the IPv4 address it carries; any other address as it is.
    public var unmapped: IPAddress {
        let isMapped = bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
        return isMapped ? IPAddress(bytes: Array(bytes[12...]))! : self
    }

    /// The address with every byte from `index` on set to zero: the network part kept, the host gone.
    public func zeroed(from index: Int) -> IPAddress {
        var copy = self
        for position in index..<bytes.count { copy.bytes[position] = 0 }
        return copy
    }
}
