import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The checks a worker makes before libfcgi reads anything: the records' param lengths, the peer's
/// address, and the bound on the daily history's reads. No sockets: bytes and values in, verdicts out.
struct FastCGIRecordCheckTests {
    private func check(_ bytes: [UInt8]) -> FastCGIRecordCheck {
        bytes.withUnsafeBytes { FastCGIRecordCheck.check($0) }
    }

    @Test func aWholeRequestAsNginxSendsItIsAcceptable() {
        #expect(check(FastCGIClient.get("/")) == .acceptable)
        #expect(check(FastCGIClient.get("/", keep: true)) == .acceptable)
    }

    @Test func aRequestCutAnywhereIsIncomplete() {
        let request = FastCGIClient.get("/?" + String(repeating: "a", count: 300))
        for cut in stride(from: 0, to: request.count, by: 1) {
            #expect(check(Array(request[..<cut])) == .incomplete, "cut at \(cut)")
        }
        // Its input (the empty stdin record) must have come too: libfcgi reads it after the params.
        #expect(check(request) == .acceptable)
    }

    /// The lengths libfcgi adds up in an `int` and aborts on, whole or split across two records.
    @Test(arguments: [(1 << 30, 1 << 30), (0x7fff_ffff, 1), (1, 0x7fff_fffe), (FastCGIRecordCheck.maxParamBytes, 1)])
    func aParamLongerThanTheBoundIsRejected(name: Int, value: Int) {
        let lengths = FastCGIClient.length(name) + FastCGIClient.length(value)
        let whole = FastCGIClient.begin() + FastCGIClient.record(type: 4, lengths + [0x41])
        guard case .rejected(let reason) = check(whole) else { Issue.record("accepted \(name) + \(value)"); return }
        #expect(reason.contains("\(name) + \(value) bytes"))

        let split = FastCGIClient.begin() + FastCGIClient.record(type: 4, Array(lengths[..<3]))
            + FastCGIClient.record(type: 4, Array(lengths[3...]))
        #expect(check(split) != .acceptable && check(split) != .incomplete)
    }

    @Test func paramsUpToTheBoundPassAcrossRecords() {
        let value = String(repeating: "v", count: 100_000)
        let pairs = FastCGIClient.pair("HTTP_COOKIE", value)
        var records = FastCGIClient.begin()
        for start in stride(from: 0, to: pairs.count, by: 65535) {
            records += FastCGIClient.record(type: 4, Array(pairs[start..<min(start + 65535, pairs.count)]))
        }
        #expect(check(records) == .incomplete)
        #expect(check(records + FastCGIClient.record(type: 4, [])) == .incomplete)
        #expect(check(records + FastCGIClient.record(type: 4, []) + FastCGIClient.record(type: 5, [])) == .acceptable)
    }

    /// The records libfcgi would parse as params outside the request's own params, or read while the
    /// worker drains the request's input: each closes the connection before libfcgi reads anything.
    @Test func recordsOutsideTheOneOrderNginxSendsAreRejected() {
        let params = FastCGIClient.record(type: 4, FastCGIClient.pair("REQUEST_URI", "/"))
        let huge = FastCGIClient.length(1 << 30) + FastCGIClient.length(1 << 30)
        let cases: [(String, [UInt8])] = [
            ("a management record after the params",
             FastCGIClient.begin() + params + FastCGIClient.record(type: 4, [])
                + FastCGIClient.record(type: 9, huge, id: 0) + FastCGIClient.record(type: 5, [])),
            ("an empty params record of request 0 before the real ones",
             FastCGIClient.begin() + FastCGIClient.record(type: 4, [], id: 0) + FastCGIClient.record(type: 4, huge)),
            ("an empty params record of another request",
             FastCGIClient.begin() + FastCGIClient.record(type: 4, [], id: 2) + FastCGIClient.record(type: 4, huge)),
            ("a second begin", FastCGIClient.begin() + params + FastCGIClient.begin() + FastCGIClient.get("/")),
            ("input of another request", FastCGIClient.begin() + params + FastCGIClient.record(type: 4, [])
                + FastCGIClient.record(type: 5, [1], id: 7) + FastCGIClient.record(type: 5, [])),
            ("a management record first", FastCGIClient.record(type: 9, huge, id: 0) + FastCGIClient.get("/")),
            ("left-over input before a request", FastCGIClient.record(type: 5, [1, 2, 3]) + FastCGIClient.get("/")),
            ("a begin record of request 0", FastCGIClient.record(type: 1, [0, 1, 0, 0, 0, 0, 0, 0], id: 0)),
            ("an authorizer", FastCGIClient.record(type: 1, [0, 2, 0, 0, 0, 0, 0, 0])),
            ("params after the params ended", FastCGIClient.begin() + params + FastCGIClient.record(type: 4, []) + params),
        ]
        for (name, bytes) in cases {
            guard case .rejected = check(bytes) else {
                Issue.record("\(name): \(check(bytes))")
                continue
            }
        }
    }

    @Test func aBodyLongerThanTheBoundIsRejectedAsSoonAsItsRecordsSaySo() {
        var request = FastCGIClient.begin() + FastCGIClient.record(type: 4, FastCGIClient.pair("REQUEST_METHOD", "POST"))
            + FastCGIClient.record(type: 4, [])
        for _ in 0..<(FastCGIRecordCheck.maxInputBytes / 65535) { request += FastCGIClient.record(type: 5, [UInt8](repeating: 1, count: 65535)) }
        #expect(check(request) == .incomplete)
        // The next record's header alone, before its content has come, is enough to refuse it.
        let next = FastCGIClient.record(type: 5, [UInt8](repeating: 1, count: 65535))
        guard case .rejected(let reason) = check(request + next.prefix(8)) else { Issue.record("not rejected"); return }
        #expect(reason.contains("request body"))
    }

    @Test func aRequestWithABodyIsAcceptableOnceItsInputHasEnded() {
        let body = FastCGIClient.begin() + FastCGIClient.record(type: 4, FastCGIClient.pair("REQUEST_METHOD", "POST"))
            + FastCGIClient.record(type: 4, []) + FastCGIClient.record(type: 5, Array("a=1".utf8))
        #expect(check(body) == .incomplete)
        #expect(check(body + FastCGIClient.record(type: 5, [])) == .acceptable)
    }

    @Test func anotherVersionIsRejected() {
        var request = FastCGIClient.get("/")
        request[0] = 2
        #expect(check(request) == .rejected("a record of FastCGI version 2, not 1"))
    }
}

struct PeerAllowListTests {
    private func address(_ text: String) -> sockaddr_storage {
        var storage = sockaddr_storage()
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET, text, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            withUnsafeBytes(of: v4) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
        } else {
            #expect(inet_pton(AF_INET6, text, &v6.sin6_addr) == 1)
            v6.sin6_family = sa_family_t(AF_INET6)
            withUnsafeBytes(of: v6) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
        }
        return storage
    }

    @Test func onlyTheListedAddressesAreAllowed() throws {
        let list = try #require(PeerAllowList(argument: "192.0.2.10, 2001:db8::1"))
        #expect(list.allows(address("192.0.2.10")))
        #expect(list.allows(address("::ffff:192.0.2.10")))  // a dual-stack socket's IPv4 peer
        #expect(list.allows(address("2001:db8::1")))
        #expect(!list.allows(address("192.0.2.11")))
        #expect(!list.allows(address("127.0.0.1")))
        #expect(PeerAllowList.describe(address("::ffff:192.0.2.10")) == "192.0.2.10")
    }

    @Test func rangesHoldTheirAddressesOnly() throws {
        let list = try PeerAllowList(parsing: "198.51.100.0/24, 2001:db8:5::/48, 10.1.2.3/8")
        #expect(list.contains(try #require(IPAddress("198.51.100.255"))))
        #expect(list.contains(try #require(IPAddress("::ffff:198.51.100.1"))))
        #expect(list.contains(try #require(IPAddress("10.200.0.1"))))
        #expect(!list.contains(try #require(IPAddress("198.51.101.0"))))
        #expect(list.contains(try #require(IPAddress("2001:db8:5:ffff::1"))))
        #expect(!list.contains(try #require(IPAddress("2001:db9::1"))))
        // ::/0 holds every IPv6 address, and IPv4 ones as mapped.
        let everything = try PeerAllowList(parsing: "::/0")
        #expect(everything.contains(try #require(IPAddress("2001:db9::1"))))
        #expect(everything.contains(try #require(IPAddress("192.0.2.1"))))
        let narrow = try PeerAllowList(parsing: "2001:db8:5::/48,192.0.2.128/25")
        #expect(!narrow.contains(try #require(IPAddress("2001:db8:6::1"))))
        #expect(narrow.contains(try #require(IPAddress("192.0.2.200"))))
        #expect(!narrow.contains(try #require(IPAddress("192.0.2.127"))))
        #expect(!narrow.contains(try #require(IPAddress("::ffff:192.0.2.127"))))
    }

    @Test(arguments: [
        ("", ""), (",", ""), ("nginx", "nginx"), ("192.0.2.10,example.org", "example.org"), ("192.0.2.0/33", "192.0.2.0/33"),
        ("2001:db8::/129", "2001:db8::/129"), ("192.0.2.0/", "192.0.2.0/"), ("192.0.2.0/-1", "192.0.2.0/-1"),
        ("192.0.2.0/24/1", "192.0.2.0/24/1"),
    ])
    func whatIsNotAnAddressListIsRefusedNamingTheEntry(argument: String, entry: String) {
        #expect(PeerAllowList(argument: argument) == nil)
        #expect(throws: PeerAllowList.BadEntry(entry: entry)) { try PeerAllowList(parsing: argument) }
    }

    @Test func loopbackAddressesAreTheOnlyOnesListenedOnWithoutAList() {
        #expect(PeerAllowList.isLoopback("127.0.0.1"))
        #expect(PeerAllowList.isLoopback("127.1.2.3"))
        #expect(PeerAllowList.isLoopback("::1"))
        #expect(!PeerAllowList.isLoopback("0.0.0.0"))
        #expect(!PeerAllowList.isLoopback("::"))
        #expect(!PeerAllowList.isLoopback("192.0.2.10"))
    }
}

struct DailyHistoryTests {
    @Test func aRangeIsReadOncePerPeriod() throws {
        let reads = SharedCount(0)
        let history = DailyHistory(period: .seconds(60), maxConcurrentReads: 1) { from, _ in
            reads.add(1)
            return [DayStats(date: UTCTimestamp.dayText(from), visitors: from, uniqueVisitors: 0, countries: [:])]
        }
        #expect(try history.days(from: 10, to: 10).plain.body.contains(#""visitors": 10,"#))
        #expect(try history.days(from: 10, to: 10).plain.body.contains(#""visitors": 10,"#))
        #expect(try history.days(from: 11, to: 11).plain.body.contains(#""visitors": 11,"#))
        #expect(reads.load() == 2)
    }

    @Test func readsPastTheBoundAreBusyAtOnceAndKeptRangesStillAnswer() throws {
        let release = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        // The period outlasts the test however slowly a loaded machine starts the reading threads: the
        // range kept first must still be kept when it is asked again.
        let history = DailyHistory(period: .seconds(600), maxConcurrentReads: 2) { from, to in
            if from == 1 || from == 2 {
                started.signal()
                release.wait()
            }
            return []
        }
        _ = try history.days(from: 0, to: 0)  // kept before the slow reads begin
        let group = DispatchGroup()
        for day in 1...2 {
            DispatchQueue.global().async(group: group) { _ = try? history.days(from: day, to: day) }
        }
        started.wait()
        started.wait()
        #expect(throws: DailyHistory.Busy.self) { try history.days(from: 3, to: 3) }
        let busy = #expect(throws: DailyHistory.Busy.self) { try history.days(from: 4, to: 4) }
        #expect(busy?.retryAfter == 600)
        #expect(try history.days(from: 0, to: 0).plain.body == #"{"days": []}"#)
        release.signal()
        release.signal()
        group.wait()
        #expect(try history.days(from: 3, to: 3).plain.body == #"{"days": []}"#)
    }

    @Test func theRouterAnswersBusyWith503AndRetryAfter() {
        let router = Router(
            pages: { fatalError("not read") },
            daily: { _, _ in throw DailyHistory.Busy(retryAfter: 2) })
        let response = router.respond(to: Request(method: "GET", uri: "/api/sys/stats/daily?from=2026-01-01&to=2026-01-02"))
        #expect(response.status == 503)
        #expect(response.headers.contains { $0.name == "Retry-After" && $0.value == "2" })
    }
}
