import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

struct IPAddressTests {
    @Test(arguments: [
        ("192.0.2.7", "192.0.2.7", 4),
        ("0.0.0.0", "0.0.0.0", 4),
        ("255.255.255.255", "255.255.255.255", 4),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1", 16),
        ("::1", "::1", 16),
        ("::", "::", 16),
        ("::ffff:192.0.2.7", "::ffff:192.0.2.7", 16),
        ("fe80::1:2:3:4", "fe80::1:2:3:4", 16),
    ])
    func parsesAndWritesCanonicalText(text: String, canonical: String, byteCount: Int) throws {
        let address = try #require(IPAddress(text))
        #expect(address.bytes.count == byteCount)
        #expect(address.isIPv4 == (byteCount == 4))
        #expect(address.family == (byteCount == 4 ? AF_INET : AF_INET6))
        #expect(address.description == canonical)
        #expect(IPAddress(canonical) == address)
        #expect(IPAddress(bytes: address.bytes) == address)
    }

    @Test(arguments: [
        "", "localhost", "192.0.2", "192.0.2.256", "192.0.2.7:80", " 192.0.2.7", "192.0.2.7 ", "01.2.3.4x",
        "2001:db8::1::2", "fe80::1%eth0", "[::1]", "2001:db8:0:0:0:0:0:0:1", "gggg::1",
    ])
    func rejectsWhatIsNotAnAddress(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func takesOnlyFourOrSixteenBytes() {
        #expect(IPAddress(bytes: []) == nil)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 6)) == nil)
        #expect(IPAddress(bytes: [192, 0, 2, 7])?.description == "192.0.2.7")
    }

    @Test func mapsIPv4IntoIPv6AndBack() throws {
        let v4 = try #require(IPAddress("192.0.2.7"))
        #expect(v4.mapped == IPAddress("::ffff:192.0.2.7"))
        #expect(v4.mapped.unmapped == v4)
        let v6 = try #require(IPAddress("2001:db8::1"))
        #expect(v6.mapped == v6)
        #expect(v6.unmapped == v6)
    }

    @Test func zeroesTheHostPart() throws {
        #expect(try #require(IPAddress("192.0.2.7")).zeroed(from: 3).description == "192.0.2.0")
        #expect(try #require(IPAddress("2001:db8:1:2:3::4")).zeroed(from: 6).description == "2001:db8:1::")
    }

    @Test(arguments: ["192.0.2.7", "2001:db8::1"])
    func roundTripsThroughASocketAddress(text: String) throws {
        let address = try #require(IPAddress(text))
        let (storage, length) = address.socketAddress(port: 8080)
        #expect(Int32(storage.ss_family) == address.family)
        #expect(Int(length) == (address.isIPv4 ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size))
        #expect(IPAddress(storage) == address)
        var unix = sockaddr_storage()
        unix.ss_family = sa_family_t(AF_UNIX)
        #expect(IPAddress(unix) == nil)
    }

    @Test func theVisitAndStoreHelpersUseIt() {
        #expect(Visit.canonicalIP("2001:DB8::0:1") == "2001:db8::1")
        #expect(Visit.canonicalIP("not an address") == nil)
        #expect(StoreIPMode.truncate("203.0.113.77") == "203.0.113.0")
        #expect(StoreIPMode.truncate("2001:db8:abcd:12::1") == "2001:db8:abcd::")
        #expect(StoreIPMode.truncate("nope") == nil)
        #expect(PeerAllowList.isLoopback("127.8.9.10"))
        #expect(PeerAllowList.isLoopback("::1"))
        #expect(PeerAllowList.isLoopback("::ffff:127.0.0.1"))
        #expect(!PeerAllowList.isLoopback("192.0.2.7"))
        #expect(!PeerAllowList.isLoopback("localhost"))
    }
}
