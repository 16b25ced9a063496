import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The product as a site owner meets it: the counter behind a real nginx that looks countries up.
@Suite(.serialized, .tags(.nginx))
struct EndToEndTests {
    /// Addresses whose country Debian's geoip-database knows (checked with geoiplookup).
    static let knownAddresses = [
        "81.2.69.142": "GB", "8.8.8.8": "US", "200.160.2.3": "BR", "5.9.0.1": "DE", "1.0.16.1": "JP",
        "10.1.2.3": "XX",  // private: no country
    ]

    @Test func visitsLandUnderTheCountryOfTheirAddress() async throws {
        let stack = try await LocalStack(workers: 2)
        var expected: [String: Int] = [:]
        for (round, (address, code)) in Self.knownAddresses.sorted(by: { $0.key < $1.key }).enumerated() {
            for _ in 0...round {
                let response = try stack.request("GET", "/", headers: ["X-Forwarded-For": address, "User-Agent": "\(LocalStack.browser) e2e"])
                #expect(response.status == 200)
                expected[code, default: 0] += 1
            }
        }
        #expect(stack.stopCounter() == 0)
        let store = try SQLiteStore(path: stack.databasePath)
        #expect(try store.stats().countries == expected)
        let stored = try store.read { db in
            try Dictionary(
                String.fetchAll(db, sql: "SELECT ip || ' ' || country_code FROM visitors").map { ($0, 1) },
                uniquingKeysWith: +)
        }
        for (address, code) in Self.knownAddresses {
            #expect(stored["\(address) \(code)"] != nil, "\(address) was not stored as \(code): \(stored)")
        }
        #expect(try store.read { db in try String.fetchOne(db, sql: "SELECT country FROM visitors WHERE country_code = 'GB'") } == "United Kingdom")
    }

    @Test func theStatsJSONHasItsShape() async throws {
        let stack = try await LocalStack(workers: 1)
        let before = try stack.request("GET", "/api/sys/stats")
        #expect(before.status == 200)
        #expect(before.headers["content-type"] == "application/json")
        #expect(before.headers["cache-control"] == "max-age=1")
        #expect(before.body == #"{"total_visitors": 0, "countries": {}, "last_updated": null, "unique_visitors_today": 0, "recent": {"last_5m": 0, "last_1h": 0, "last_24h": 0}, "bots": 0, "ignored": 0, "time_zone": "UTC", "periods": {"today": 0, "yesterday": 0, "last_7_days": 0, "previous_7_days": 0, "last_30_days": 0, "previous_30_days": 0}, "pages": {}, "referrers": {}}"#)

        _ = try stack.request("GET", "/", headers: ["X-Forwarded-For": "8.8.8.8"])
        var json: [String: Any] = [:]
        // The visit shows once written (0.5 s) and the cache refreshed (1 s).
        try await stack.waitFor("the visit in the stats", seconds: 6) {
            let body = try stack.request("GET", "/api/sys/stats").body
            json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
            return json["total_visitors"] as? Int == 1
        }
        #expect(json["countries"] as? [String: Int] == ["US": 1])
        let updated = try #require(json["last_updated"] as? String)
        #expect(UTCTimestamp.parse(updated) != nil)
        #expect(
            Set(json.keys) == [
                "total_visitors", "countries", "last_updated", "unique_visitors_today", "recent", "bots", "ignored", "time_zone",
                "periods", "pages", "referrers",
            ])
        #expect(json["pages"] as? [String: Int] == ["/": 1])
        #expect(json["unique_visitors_today"] as? Int == 1)
        #expect(json["recent"] as? [String: Int] == ["last_5m": 1, "last_1h": 1, "last_24h": 1])
        #expect(json["bots"] as? Int == 0)
    }

    @Test func theBadgesNumberIsTheTotalThroughNginx() async throws {
        let stack = try await LocalStack(workers: 1)
        for _ in 0..<3 { #expect(try stack.request("GET", "/").status == 200) }
        var total = 0
        try await stack.waitFor("the visits in the stats", seconds: 6) {
            let body = try stack.request("GET", "/api/sys/stats").body
            total = (try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["total_visitors"] as? Int ?? 0
            return total == 3
        }
        let badge = try stack.request("GET", "/api/sys/badge.svg?label=hits")
        #expect(badge.status == 200)
        #expect(badge.headers["content-type"] == "image/svg+xml")
        #expect(badge.headers["cache-control"] == "no-cache")
        let document = try XMLDocument(data: Data(badge.body.utf8))
        let texts = try document.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
        #expect(texts == ["hits", "\(total)"])
        // Asking for the badge counted nothing.
        #expect(stack.stopCounter() == 0)
        #expect(try SQLiteStore(path: stack.databasePath).stats().totalVisitors == 3)
    }

    @Test func headNotFoundAndMethodNotAllowed() async throws {
        let stack = try await LocalStack(workers: 1)
        let head = try stack.request("HEAD", "/")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(Int(head.headers["content-length"] ?? "") ?? 0 > 0)
        #expect(head.headers["content-type"] == "text/html; charset=utf-8")
        #expect(try stack.request("HEAD", "/api/sys/stats").status == 200)

        let missing = try stack.request("GET", "/api/sys/nope")
        #expect(missing.status == 404)
        #expect(missing.body == #"{"status": 404, "message": "no such page: /api/sys/nope"}"#)

        let post = try stack.request("POST", "/", headers: ["Content-Length": "0"])
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        let postAPI = try stack.request("DELETE", "/api/sys/stats")
        #expect(postAPI.status == 405)
        #expect(postAPI.headers["content-type"] == "application/json")

        #expect(stack.stopCounter() == 0)
        #expect(try SQLiteStore(path: stack.databasePath).stats().totalVisitors == 0)
    }

    @Test func healthAndMetricsAnswerLocalClientsOnly() async throws {
        let stack = try await LocalStack(workers: 2)
        _ = try stack.request("GET", "/", headers: ["X-Forwarded-For": "81.2.69.142"])
        try await stack.waitFor("the visit to be written") { try stack.request("GET", "/api/sys/stats").body.contains("\"GB\": 1") }

        let health = try stack.health()
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "ok")
        let workers = try #require(health.json["workers"] as? [[String: Any]])
        #expect(Set(workers.compactMap { $0["pid"] as? Int }.map(Int32.init)) == stack.workerPIDs())
        #expect(workers.allSatisfy { $0["buffered_visits"] as? Int == 0 && $0["consecutive_failures"] as? Int == 0 })

        let metrics = try stack.request("GET", "/api/sys/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.body.contains("visitor_counter_visits_total{country=\"GB\"} 1\n"))
        #expect(metrics.body.contains("visitor_counter_buffered_visits{worker=\"1\"} 0\n"))

        // realip makes X-Forwarded-For the client's address: a visitor from elsewhere is refused.
        for path in ["/api/sys/health", "/api/sys/metrics"] {
            #expect(try stack.request("GET", path, headers: ["X-Forwarded-For": "8.8.8.8"]).status == 403)
        }
        #expect(try stack.request("GET", "/api/sys/stats", headers: ["X-Forwarded-For": "8.8.8.8"]).status == 200)
        #expect(stack.stopCounter() == 0)
    }

    @Test func theDailyHistoryAnswersGoodRangesAnd400sBadOnes() async throws {
        let stack = try await LocalStack(workers: 1)
        _ = try stack.request("GET", "/", headers: ["X-Forwarded-For": "81.2.69.142"])
        #expect(stack.stopCounter() == 0)
        try await stack.restartCounter()
        let today = UTCTimestamp.dayText(UTCTimestamp.day(Date()))
        let yesterday = UTCTimestamp.dayText(UTCTimestamp.day(Date()) - 1)
        let good = try stack.request("GET", "/api/sys/stats/daily?from=\(yesterday)&to=\(today)")
        #expect(good.status == 200)
        #expect(good.headers["content-type"] == "application/json")
        #expect(
            good.body == "{\"days\": [{\"date\": \"\(yesterday)\", \"visitors\": 0, \"unique_visitors\": 0, \"countries\": {}}, "
                + "{\"date\": \"\(today)\", \"visitors\": 1, \"unique_visitors\": 1, \"countries\": {\"GB\": 1}}]}")
        for (query, message) in [
            ("", "from and to are required"), ("?from=2026-11-01", "from and to are required"),
            ("?from=2026-13-01&to=2026-12-01", "from is not a date"), ("?from=2026-11-01&to=yesterday", "to is not a date"),
            ("?from=2026-11-02&to=2026-11-01", "is after to"), ("?from=2025-01-01&to=2026-01-02", "longer than 366 days"),
        ] {
            let bad = try stack.request("GET", "/api/sys/stats/daily\(query)")
            #expect(bad.status == 400, "\(query)")
            #expect(bad.headers["content-type"] == "application/json")
            #expect(bad.body.contains(message), "\(query): \(bad.body.prefix(200))")
        }
        #expect(try stack.request("GET", "/api/sys/stats/daily?from=2025-01-01&to=2025-12-31").status == 200)
        #expect(stack.stopCounter() == 0)
    }

    /// A zone whose date is not UTC's now: Pacific/Pago_Pago (-11) is a day behind from 00:00 to 11:00
    /// UTC, Pacific/Kiritimati (+14) a day ahead from 10:00 to 24:00. The one with at least half an hour
    /// left; in the last five minutes of a UTC day, neither has, so it waits for the next.
    static func zoneOnAnotherDate() async throws -> LocalCalendar {
        var second = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400)
        if second > 86_100 {
            try await Task.sleep(for: .seconds(86_400 - second + 5))
            second = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400)
        }
        let zone = LocalCalendar(identifier: second < 37_800 ? "Pacific/Pago_Pago" : "Pacific/Kiritimati")!
        #expect(zone.day(Date()) != UTCTimestamp.day(Date()))
        return zone
    }

    /// `serve --time-zone` with a zone whose date differs from UTC's: today's visit is on the local
    /// date in the daily API, in `periods` and on the page; `stats` and `export`, given no zone, read
    /// the database's; and the database refuses to be served in UTC afterwards.
    @Test func todaysVisitsAreOnTheLocalDate() async throws {
        let calendar = try await Self.zoneOnAnotherDate()
        let stack = try await LocalStack(workers: 1, extraArguments: ["--time-zone", calendar.identifier])
        _ = try stack.request("GET", "/", headers: ["X-Forwarded-For": "81.2.69.142"])
        var json: [String: Any] = [:]
        try await stack.waitFor("the visit in the stats", seconds: 10) {
            json = try JSONSerialization.jsonObject(with: Data(try stack.request("GET", "/api/sys/stats").body.utf8)) as? [String: Any] ?? [:]
            return json["total_visitors"] as? Int == 1
        }
        let local = calendar.day(Date())
        let utc = UTCTimestamp.day(Date())
        #expect(json["time_zone"] as? String == calendar.identifier)
        #expect(json["unique_visitors_today"] as? Int == 1)
        #expect(
            json["periods"] as? [String: Int] == [
                "today": 1, "yesterday": 0, "last_7_days": 1, "previous_7_days": 0, "last_30_days": 1, "previous_30_days": 0,
            ])
        let (first, last) = (min(local, utc), max(local, utc))
        let daily = try stack.request("GET", "/api/sys/stats/daily?from=\(UTCTimestamp.dayText(first))&to=\(UTCTimestamp.dayText(last))")
        #expect(daily.status == 200)
        let days = try #require(
            (try JSONSerialization.jsonObject(with: Data(daily.body.utf8)) as? [String: Any])?["days"] as? [[String: Any]])
        let visitors = Dictionary(uniqueKeysWithValues: days.map { ($0["date"] as? String ?? "", $0["visitors"] as? Int ?? -1) })
        #expect(visitors == [UTCTimestamp.dayText(local): 1, UTCTimestamp.dayText(utc): 0], "\(daily.body)")
        // The page's own requests are visits too (from 127.0.0.1, country XX).
        try await stack.waitFor("the page with the visit", seconds: 10) {
            try stack.request("GET", "/").body.contains(#"<dd class="visits">1</dd><dd class="change new">new: none yesterday</dd>"#)
        }
        #expect(try stack.request("GET", "/").body.contains(#"<span id="time-zone">\#(calendar.identifier)</span>"#))
        #expect(stack.stopCounter() == 0)

        let commands = try TemporaryDirectory()
        let stats = try ChildProcess(try visitorCounterExecutable(), ["stats", "--database", stack.databasePath], in: commands, name: "stats")
        #expect(stats.wait() == 0, "\(stats.stderr)")
        let figures = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any] ?? [:]
        let total = try #require(figures["total_visitors"] as? Int)
        #expect(figures["time_zone"] as? String == calendar.identifier)
        #expect((figures["periods"] as? [String: Int])?["today"] == total, "\(stats.stdout)")
        let localDate = UTCTimestamp.dayText(local)
        let export = try ChildProcess(
            try visitorCounterExecutable(),
            ["export", "--database", stack.databasePath, "--daily", "--from", localDate, "--to", localDate], in: commands,
            name: "export")
        #expect(export.wait() == 0, "\(export.stderr)")
        #expect(export.stdout.hasPrefix("date,visitors,unique_visitors,country_code,country_visitors\n\(localDate),\(total),"))
        #expect(export.stdout.contains("\n\(localDate),\(total),2,GB,1\n"), "\(export.stdout)")
        // The raw visit is in the local day's export, whatever its UTC date.
        let raw = try ChildProcess(
            try visitorCounterExecutable(), ["export", "--database", stack.databasePath, "--from", localDate, "--to", localDate],
            in: commands, name: "export-raw")
        #expect(raw.wait() == 0, "\(raw.stderr)")
        #expect(raw.stdout.split(separator: "\n").count == total + 1, "\(raw.stdout)")
    }

    @Test func aBrowserThatTakesGzipGetsTheCountersCompressedPageThroughNginx() async throws {
        let stack = try await LocalStack(workers: 1)
        let plain = try stack.request("GET", "/")
        let compressed = try stack.request("GET", "/", headers: ["Accept-Encoding": "gzip, deflate, br"])
        #expect(compressed.status == 200)
        #expect(compressed.headers["content-encoding"] == "gzip")
        #expect(plain.headers["content-encoding"] == nil)
        #expect(Int(compressed.headers["content-length"] ?? "") == compressed.bodyBytes.count)
        let page = try gunzip(compressed.bodyBytes)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
        #expect(compressed.bodyBytes.count * 2 < plain.bodyBytes.count)
    }

    @Test func anOwnersTemplateIsServedWithThePolicyOfItsOwnInlineStyle() async throws {
        let directory = try TemporaryDirectory()
        let template = directory.path("index.mustache")
        let style = "p { color: #123456; }"
        try """
            <!DOCTYPE html><title>Mine</title><style>\(style)</style>
            <p id="total">{{total_visitors_text}} visits</p>
            <ul>{{#countries}}<li>{{flag}} {{name}} {{visitors}} {{share_text}}</li>{{/countries}}</ul>
            """.write(toFile: template, atomically: true, encoding: .utf8)
        let stack = try await LocalStack(workers: 1, extraArguments: ["--index-template", template])
        _ = try stack.request("GET", "/", headers: ["X-Forwarded-For": "81.2.69.142"])
        try await stack.waitFor("the visit in the stats") {
            try stack.request("GET", "/api/sys/stats").body.contains("\"total_visitors\": 1,")
        }
        try await Task.sleep(for: .seconds(1.5))  // one stats-cache period: the page is rendered again
        let page = try stack.request("GET", "/")
        #expect(page.status == 200)
        #expect(page.body.contains("<p id=\"total\">1 visits</p>"), "\(page.body)")
        #expect(page.body.contains("<li>\u{1F1EC}\u{1F1E7} United Kingdom 1 100.0%</li>"), "\(page.body)")
        #expect(
            page.headers["content-security-policy"]
                == "default-src 'none'; style-src 'sha256-\(SHA256.base64(style))'; base-uri 'none'; form-action 'none'; "
                + "frame-ancestors 'none'")

        // serve read the file at its start: a worker started after the file was broken renders what
        // serve read, and does not fail.
        try "<p>{{#broken</p>".write(toFile: template, atomically: true, encoding: .utf8)
        let before = stack.workerPIDs()
        kill(try #require(before.first), SIGKILL)
        try await stack.waitFor("a replacement worker") { stack.workerPIDs().count == 1 && stack.workerPIDs() != before }
        try await stack.waitFor("the replacement's page") { try stack.request("GET", "/").body.contains("<p id=\"total\">") }
    }

    @Test func forgedCountryHeadersAreIgnored() async throws {
        let stack = try await LocalStack(workers: 1)
        let forged = [
            "X-Forwarded-For": "8.8.8.8", "CF-IPCountry": "GB", "X-Country-Code": "GB", "GeoIP-Country-Code": "GB",
            "GEOIP_COUNTRY_CODE": "GB", "Geoip-Country-Name": "Atlantis",
        ]
        #expect(try stack.request("GET", "/", headers: forged).status == 200)
        #expect(try stack.request("GET", "/?GEOIP_COUNTRY_CODE=GB", headers: ["X-Forwarded-For": "8.8.8.8"]).status == 200)
        #expect(stack.stopCounter() == 0)
        let store = try SQLiteStore(path: stack.databasePath)
        #expect(try store.stats().countries == ["US": 2])
        #expect(try store.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT country FROM visitors") } == ["United States"])
    }

    @Test func totalsAreExactAfterParallelLoadAndSIGTERM() async throws {
        let stack = try await LocalStack(workers: 4)
        let addresses = Array(Self.knownAddresses.keys)
        let answered = SharedCount(0)
        let failures = SharedCount(0)
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            for index in 0..<500 {
                let address = addresses[(client + index) % addresses.count]
                if (try? stack.request("GET", "/", headers: ["X-Forwarded-For": address]).status) == 200 {
                    answered.add(1)
                } else {
                    failures.add(1)
                }
            }
        }
        #expect(failures.load() == 0)
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("stopped"))
        #expect(!stack.counter.stderr.contains("warning"), "\(stack.counter.stderr)")
        let store = try SQLiteStore(path: stack.databasePath)
        let stats = try store.stats()
        #expect(stats.totalVisitors == answered.load())
        #expect(try store.visitorRowCount() == answered.load())
        #expect(stats.countries.values.reduce(0, +) == answered.load())
    }

    @Test func aKilledWorkerIsReplaced() async throws {
        let stack = try await LocalStack(workers: 2)
        let before = stack.workerPIDs()
        #expect(before.count == 2)
        let victim = try #require(before.first)
        kill(victim, SIGKILL)
        var after: Set<Int32> = []
        try await stack.waitFor("a new worker in place of \(victim)", seconds: 10) {
            after = stack.workerPIDs()
            return after.count == 2 && !after.contains(victim)
        }
        #expect(after.count == 2)
        #expect(!after.contains(victim))
        #expect(stack.counter.process.isRunning)
        for _ in 0..<20 { #expect(try stack.request("GET", "/").status == 200) }
        #expect(stack.stopCounter() == 0)
        #expect(stack.counter.stderr.contains("worker died, restarting it"))
    }
}
