import Foundation
import GRDB
import Testing

@testable import VisitorCounter

/// The owner's own visits kept out, through a real nginx: `--ignore-ips` against the address nginx
/// passes after realip (the local nginx takes it from `X-Forwarded-For`), and the opt-out cookie.
@Suite(.serialized, .tags(.nginx))
struct OwnerVisitsTests {
    static let ignoreList = "81.2.69.142,198.51.100.0/24,2001:db8:5::/48"

    @Test func theOwnersAddressesAndCookieAreCountedInIgnoredOnly() async throws {
        let stack = try await LocalStack(workers: 2, extraArguments: ["--ignore-ips", Self.ignoreList])
        // (address, extra headers, what it counts as)
        let requests: [(String, [String: String], String)] = [
            ("81.2.69.142", [:], "ignored"),  // the IPv4 address
            ("81.2.69.142", [:], "ignored"),
            ("81.2.69.142", ["User-Agent": "curl/8.5.0"], "ignored"),  // the owner's curl: not a bot either
            ("198.51.100.77", [:], "ignored"),  // in the IPv4 range
            ("198.51.100.0", [:], "ignored"),
            ("2001:db8:5::9", [:], "ignored"),  // in the IPv6 range
            ("2001:db8:5:ffff:1::2", [:], "ignored"),
            ("8.8.8.8", ["Cookie": "theme=dark; visitor_counter_ignore=1; lang=en"], "ignored"),  // the cookie among others
            ("8.8.8.8", ["Cookie": "visitor_counter_ignore=1"], "ignored"),
            ("8.8.8.8", [:], "visit"),
            ("8.8.8.8", ["Cookie": "visitor_counter_ignore=0; x_visitor_counter_ignore=1; other=visitor_counter_ignore=1"], "visit"),
            ("81.2.69.143", [:], "visit"),  // beside the listed address
            ("198.51.101.1", [:], "visit"),  // beside the IPv4 range
            ("2001:db8:6::1", [:], "visit"),  // beside the IPv6 range
            ("5.9.0.1", ["User-Agent": "curl/8.5.0"], "bot"),
            ("1.0.16.1", ["Sec-Purpose": "prefetch", "Purpose": "prefetch"], "visit"),  // a prefetch is a visit (docs/http.md)
        ]
        var expected: [String: Int] = [:]
        var index = try stack.request("GET", "/", headers: ["X-Forwarded-For": "200.160.2.3"]).body
        expected["visit", default: 0] += 1
        for (address, headers, kind) in requests {
            var sent = headers
            sent["X-Forwarded-For"] = address
            let response = try stack.request("GET", "/", headers: sent)
            #expect(response.status == 200, "\(address) \(headers)")
            #expect(response.headers["set-cookie"] == nil)
            // Answered as usual: the same page as anyone's (the figures may have moved on in between).
            #expect(response.body.contains("<title>") && response.body.count > index.count / 2, "\(address) \(headers)")
            index = response.body
            expected[kind, default: 0] += 1
        }
        let visits = try #require(expected["visit"])
        let ignored = try #require(expected["ignored"])
        #expect(visits == 7 && ignored == 9)
        try await stack.waitFor("the ignored requests in the stats", seconds: 15) {
            let json = try JSONSerialization.jsonObject(with: Data(try stack.request("GET", "/api/sys/stats").body.utf8))
            let stats = json as? [String: Any] ?? [:]
            return stats["ignored"] as? Int == ignored && stats["total_visitors"] as? Int == visits
        }
        // Each worker's stats cache refreshes on its own: the metrics may come from the other one.
        try await stack.waitFor("the ignored requests in the metrics", seconds: 15) {
            try stack.request("GET", "/api/sys/metrics").body.contains("\nvisitor_counter_ignored_total \(ignored)\n")
        }
        #expect(stack.stopCounter() == 0)

        let store = try SQLiteStore(path: stack.databasePath)
        let stats = try store.stats()
        #expect(stats.totalVisitors == visits)
        #expect(stats.ignored == ignored)
        #expect(stats.bots == 1)
        #expect(stats.countries.values.reduce(0, +) == visits)
        #expect(stats.recent.lastDay == visits)
        #expect(stats.uniqueVisitorsToday == visits - 1)  // 8.8.8.8 came twice with the same user agent
        let today = UTCTimestamp.day(Date())
        #expect(try store.daily(from: today - 1, to: today).map(\.visitors).reduce(0, +) == visits)
        let stored = try store.read { db in try String.fetchAll(db, sql: "SELECT ip FROM visitors ORDER BY ip") }
        #expect(stored == ["1.0.16.1", "198.51.101.1", "200.160.2.3", "2001:db8:6::1", "8.8.8.8", "8.8.8.8", "81.2.69.143"])
    }

    @Test func aPageUnderApiSysSetsAndClearsTheCookie() async throws {
        let stack = try await LocalStack(workers: 1)
        let set = try stack.request("GET", Router.ignorePath)
        #expect(set.status == 200)
        #expect(set.headers["set-cookie"] == "visitor_counter_ignore=1; Max-Age=34560000; Path=/; SameSite=Lax; HttpOnly")
        #expect(set.headers["cache-control"] == "no-store")
        #expect(set.body.contains("no longer counted"))
        let cleared = try stack.request("GET", Router.ignorePath + "?clear")
        #expect(cleared.status == 200)
        #expect(cleared.headers["set-cookie"] == "visitor_counter_ignore=; Max-Age=0; Path=/; SameSite=Lax; HttpOnly")
        #expect(cleared.body.contains("count again"))
        // No other answer sets a cookie.
        for path in ["/", "/api/sys/stats", "/api/sys/stats/daily?from=2026-01-01&to=2026-01-02", "/api/sys/nope"] {
            #expect(try stack.request("GET", path).headers["set-cookie"] == nil, "\(path)")
        }
        // The browser that took the cookie sends it back: its visit counts in `ignored`.
        _ = try stack.request("GET", "/", headers: ["Cookie": "visitor_counter_ignore=1"])
        #expect(stack.stopCounter() == 0)
        let stats = try SQLiteStore(path: stack.databasePath).stats()
        #expect(stats.ignored == 1)
        #expect(stats.totalVisitors == 1)
    }
}
