import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Every page of the site counted through nginx's mirror, with the shipped `deploy/nginx.conf` and a
/// real nginx: what counts, what does not, and what a stopped or frozen counter costs a page.
@Suite(.serialized, .tags(.nginx))
struct PageViewTests {
    static let site = [
        "about.html": "<h1>About</h1>", "docs/index.html": "<h1>Docs</h1>", "style.css": "body {}",
        "logo.png": "not really a png", "404.html": "<h1>Our own 404</h1>", "report.pdf": "%PDF",
    ]
    /// An owner's redirect, as one adds it to the site.
    static let redirect = "    location = /moved { return 301 /about.html; }"

    static func options(workers: Int = 1) -> LocalStack.Options {
        var options = LocalStack.Options(workers: workers)
        options.siteFiles = site
        options.serverLines = redirect
        return options
    }

    /// The stats JSON once `condition` holds for it.
    static func stats(_ stack: LocalStack, until condition: @escaping ([String: Any]) -> Bool) async throws -> [String: Any] {
        var json: [String: Any] = [:]
        try await stack.waitFor("the stats", seconds: 20) {
            let body = try stack.request("GET", "/api/sys/stats").body
            json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
            return condition(json)
        }
        return json
    }

    @Test func pagesServedFromFilesAreCountedUnderTheirPathsWithTheirReferrers() async throws {
        let stack = try await LocalStack(Self.options())
        let news = ["Referer": "https://News.Example.com:443/story?id=1#top", "X-Forwarded-For": "81.2.69.142"]
        // Counted: 3 of /about.html (the query and the %-escape do not make other pages), the
        // directory's index under its own path, a download, and the counter's page as /.
        #expect(try stack.request("GET", "/about.html", headers: news).status == 200)
        #expect(try stack.request("GET", "/about.html?utm_source=x", headers: ["Referer": "http://localhost/"]).status == 200)
        #expect(try stack.request("GET", "/%61bout.html", headers: ["Referer": "not a url"]).status == 200)
        #expect(try stack.request("GET", "/docs", headers: ["Referer": "http://search.example.org/q"]).status == 200)
        #expect(try stack.request("GET", "/report.pdf").status == 200)
        #expect(try stack.request("GET", "/", headers: ["Referer": "https://news.example.com/"]).status == 200)
        // Not counted: a 404 (with the site's own page), a redirect, a HEAD, a bot, assets, and the
        // mirror's location asked for directly.
        let missing = try stack.request("GET", "/missing.html")
        #expect(missing.status == 404)
        #expect(missing.body.contains("Our own 404"))
        #expect(try stack.request("GET", "/moved").status == 301)
        #expect(try stack.request("HEAD", "/about.html").status == 200)
        #expect(try stack.request("GET", "/about.html", headers: ["User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"]).status == 200)
        #expect(try stack.request("GET", "/style.css").status == 200)
        #expect(try stack.request("GET", "/logo.png").status == 200)
        #expect(try stack.request("GET", "/_visitor_counter_page").status == 404)
        // A PDF viewer's later ranges of the download it counted (the first range, from byte 0, is a visit
        // and counted above as a plain GET would be: here it is not asked).
        #expect(try stack.request("GET", "/report.pdf", headers: ["Range": "bytes=2-3"]).status == 206)
        // The owner's browser, with the opt-out cookie among others: in `ignored` only.
        #expect(try stack.request("GET", "/about.html", headers: ["Cookie": "theme=dark; visitor_counter_ignore=1"]).status == 200)

        let json = try await Self.stats(stack) {
            $0["total_visitors"] as? Int == 6 && $0["bots"] as? Int == 1 && $0["ignored"] as? Int == 1
        }
        #expect(json["pages"] as? [String: Int] == ["/about.html": 3, "/docs": 1, "/report.pdf": 1, "/": 1])
        #expect(json["referrers"] as? [String: Int] == ["news.example.com": 2, "search.example.org": 1])
        // The country is looked up inside the mirror as for GET /.
        #expect((json["countries"] as? [String: Int])?["GB"] == 1)
        // Two visitors (GB's address, and 127.0.0.1 with the same browser) over six page views.
        #expect(json["unique_visitors_today"] as? Int == 2)
        // The badge's number is the total, page views included.
        let badge = try stack.request("GET", "/api/sys/badge.svg")
        #expect(badge.status == 200)
        #expect(badge.body.contains(">6</text>"), "\(badge.body)")

        let today = UTCTimestamp.dayText(UTCTimestamp.day(Date()))
        let daily = try stack.request("GET", "\(Router.dailyPagesPath)?from=\(today)&to=\(today)")
        #expect(daily.status == 200)
        let days = try JSONSerialization.jsonObject(with: Data(daily.body.utf8)) as? [String: [[String: Any]]]
        #expect(days?["days"]?.first?["pages"] as? [String: Int] == ["/about.html": 3, "/docs": 1, "/report.pdf": 1, "/": 1])
        #expect(days?["days"]?.first?["referrers"] as? [String: Int] == ["news.example.com": 2, "search.example.org": 1])

        #expect(stack.stopCounter() == 0)
        let stored = try SQLiteStore(path: stack.databasePath).read { db in
            try String.fetchAll(db, sql: "SELECT path || ' ' || coalesce(referrer, '-') FROM visitors ORDER BY id")
        }
        #expect(stored.sorted() == ["/ news.example.com", "/about.html -", "/about.html -", "/about.html news.example.com", "/docs search.example.org", "/report.pdf -"])
    }

    @Test func aPageAnswersAtOnceWhileTheCounterIsStoppedAndWithinTheMirrorsTimeoutWhileItIsFrozen() async throws {
        let stack = try await LocalStack(Self.options())
        // Frozen: the mirror's connection is accepted by the kernel and never answered. The page itself
        // is sent at once; the next request on the connection waits for the mirror's 1 s timeout, not
        // nginx's default 60 s.
        let workers = stack.workerPIDs()
        #expect(!workers.isEmpty)
        for pid in workers { kill(pid, SIGSTOP) }
        let frozen = try stack.getsOnOneConnection(["/about.html", "/docs/"])
        for pid in workers { kill(pid, SIGCONT) }
        #expect(frozen.map(\.status) == [200, 200])
        for answer in frozen { #expect(answer.seconds < 5, "a page waited \(answer.seconds) s for a frozen counter") }

        // Stopped: nginx's connect is refused at once, and no page waits for it.
        #expect(stack.stopCounter() == 0)
        let stopped = try stack.getsOnOneConnection(["/about.html", "/docs/", "/about.html"])
        #expect(stopped.map(\.status) == [200, 200, 200])
        for answer in stopped { #expect(answer.seconds < 0.9, "a page waited \(answer.seconds) s for a stopped counter") }
    }

    @Test func aCrawlOfManyDistinctPathsStaysWithinTheDailyBound() async throws {
        let crawl = BatchPlan.maxKeysPerDay + 100
        var options = Self.options()
        for index in 0..<crawl { options.siteFiles["crawl/\(index).html"] = "\(index)" }
        let stack = try await LocalStack(options)
        for index in 0..<crawl { #expect(try stack.request("GET", "/crawl/\(index).html").status == 200) }
        _ = try await Self.stats(stack) { $0["total_visitors"] as? Int == crawl }
        #expect(stack.stopCounter() == 0)
        let (rows, sum, other) = try SQLiteStore(path: stack.databasePath).read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM daily_pages") ?? 0,
                try Int.fetchOne(db, sql: "SELECT sum(visitors) FROM daily_pages") ?? 0,
                try Int.fetchOne(db, sql: "SELECT visitors FROM daily_pages WHERE path = ?", arguments: [BatchPlan.otherKey]) ?? 0
            )
        }
        #expect(rows <= BatchPlan.maxKeysPerDay + 1)
        #expect(sum == crawl)
        #expect(other >= 100)
    }
}
