import Foundation
import Testing

@testable import VisitorCounter

/// What a page view is: its path and referrer as counted, the router's answer to nginx's mirror, the
/// journal record that keeps them, and the bound on a batch's counts without rows.
struct PageVisitTests {
    static let longAs = "/" + String(repeating: "a", count: 255)
    static let tooLong = "/" + String(repeating: "a", count: 256)
    static let tooLongEncoded = "/" + String(repeating: "\u{E9}", count: 43)
    static let paths: [(String, String)] = [
        ("/", "/"),
        ("/about.html", "/about.html"),
        ("/docs/", "/docs/"),
        // nginx's $uri is decoded: other bytes, the space and % come back percent-encoded.
        ("/caf\u{E9}.html", "/caf%C3%A9.html"),
        ("/a b%c", "/a%20b%25c"),
        ("/tab\there", "/tab%09here"),
        ("about.html", Visit.invalidPath),
        ("", Visit.invalidPath),
        (longAs, longAs),
        (tooLong, Visit.longPath),
        (tooLongEncoded, Visit.longPath),
    ]

    @Test(arguments: paths)
    func pathsAreCountedAsPrintableASCIIOfAtMost256Bytes(raw: String, counted: String) {
        #expect(Visit.normalisedPath(Array(raw.utf8)) == counted)
        #expect(counted.utf8.count <= Visit.maxPathBytes)
    }

    @Test(arguments: [
        ("https://News.Example.com:443/story?id=1#top", "localhost", "news.example.com"),
        ("http://user:pw@blog.example.org/x", "localhost", "blog.example.org"),
        ("HTTP://EXAMPLE.NET", "localhost", "example.net"),
        ("https://example.net./", "localhost", "example.net"),
        ("https://www.site.example/page", "WWW.SITE.EXAMPLE:8080", nil),
        ("https://site.example:8443/", "site.example", nil),
        ("", "localhost", nil),
        ("android-app://com.example", "localhost", nil),
        ("ftp://example.net/", "localhost", nil),
        ("https://[2001:db8::1]/", "localhost", nil),
        ("https://exa mple.net/", "localhost", nil),
        ("https://ex\u{E4}mple.net/", "localhost", nil),
        ("https:///path", "localhost", nil),
        ("https://-bad.example/", "localhost", nil),
    ] as [(String, String, String?)])
    func theReferrerIsTheHostOfAnotherSite(referer: String, host: String, counted: String?) {
        #expect(Visit.referrerHost(Array(referer.utf8), siteHost: Array(host.utf8)) == counted)
    }

    @Test func aHostOfMoreThan253BytesIsNoReferrer() {
        let long = (0..<26).map { _ in "abcdefghi" }.joined(separator: ".")
        #expect(long.utf8.count == 259)
        #expect(Visit.referrerHost(Array("https://\(long)/".utf8), siteHost: []) == nil)
        let fits = String(long.prefix(253))
        #expect(Visit.referrerHost(Array("https://\(fits)/".utf8), siteHost: []) == fits)
    }

    var router: Router {
        let pages = RenderedPages(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), maxAge: 1)
        return Router(pages: { pages }, now: { Date(timeIntervalSince1970: 0) }, ignoredAddresses: PeerAllowList(argument: "192.0.2.99"))
    }

    func pageView(_ method: String, page: String, address: String = "192.0.2.7", referer: String = "") -> Response {
        router.respond(
            to: Request(
                method: method, uri: "/whatever/the/client/asked?x=1", remoteAddress: address,
                userAgent: Array("Mozilla/5.0 test".utf8), countryCode: "GB", countryName: "United Kingdom",
                page: Array(page.utf8), referer: Array(referer.utf8), host: Array("site.example".utf8)))
    }

    @Test func aMirroredGETIsAVisitOfItsPageAnsweredWith204() throws {
        let response = pageView("GET", page: "/about.html", referer: "https://news.example.com/x")
        #expect(response.status == 204)
        #expect(response.body.isEmpty)
        let visit = try #require(response.visit)
        #expect(visit.path == "/about.html")
        #expect(visit.referrer == "news.example.com")
        #expect(visit.countryCode == "GB")
        #expect(visit.ip == "192.0.2.7")
        #expect(!visit.ignored)
    }

    @Test func aMirroredHEADOrPOSTCountsNothing() {
        for method in ["HEAD", "POST", "OPTIONS"] {
            let response = pageView(method, page: "/about.html")
            #expect(response.status == 204)
            #expect(response.visit == nil)
        }
    }

    @Test func aLaterRangeOfAFileIsNoVisitAndTheFirstIs() throws {
        func view(range: String?) -> Response {
            router.respond(
                to: Request(method: "GET", uri: "/f.pdf", remoteAddress: "192.0.2.7", page: Array("/f.pdf".utf8), range: range.map { Array($0.utf8) }))
        }
        #expect(view(range: nil).visit != nil)
        #expect(view(range: "bytes=0-").visit != nil)
        #expect(view(range: "bytes=0-1023").visit != nil)
        #expect(view(range: "bytes=1024-2047").visit == nil)
        #expect(view(range: "bytes=-500").visit == nil)
    }

    @Test func theOwnersPageViewIsIgnoredAndTheSitesOwnReferrerIsNone() throws {
        #expect(try #require(pageView("GET", page: "/a", address: "192.0.2.99").visit).ignored)
        #expect(try #require(pageView("GET", page: "/a", referer: "https://site.example/b").visit).referrer == nil)
    }

    @Test func theCountersOwnPageIsThePathSlashWithItsReferrer() throws {
        let response = router.respond(
            to: Request(
                method: "GET", uri: "/", remoteAddress: "192.0.2.7", referer: Array("https://news.example.com/".utf8),
                host: Array("localhost".utf8)))
        let visit = try #require(response.visit)
        #expect(visit.path == "/")
        #expect(visit.referrer == "news.example.com")
    }

    @Test func theDailyPagesRouteTakesUpTo31DaysAndSaysWhatIsWrong() throws {
        let pages = RenderedPages(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), maxAge: 1)
        let router = Router(
            pages: { pages },
            dailyPages: { from, to in
                if from == UTCTimestamp.parseDay("2026-01-01") { throw DailyHistory.Busy(retryAfter: 1) }
                return (from...to).map { DayPages(date: UTCTimestamp.dayText($0), pages: ["/": $0 - from + 1], referrers: [:]) }
            })
        func get(_ query: String) -> Response { router.respond(to: Request(method: "GET", uri: "\(Router.dailyPagesPath)?\(query)")) }
        let good = get("from=2026-11-01&to=2026-11-02")
        #expect(good.status == 200)
        #expect(good.body == #"{"days": [{"date": "2026-11-01", "pages": {"/": 1}, "referrers": {}}, {"date": "2026-11-02", "pages": {"/": 2}, "referrers": {}}]}"#)
        #expect(get("from=2026-11-01&to=2026-12-01").status == 200)
        for bad in ["from=2026-11-01&to=2026-12-02", "from=2026-11-02&to=2026-11-01", "from=2026-11-01", "from=x&to=2026-11-01"] {
            #expect(get(bad).status == 400, "\(bad)")
        }
        let busy = get("from=2026-01-01&to=2026-01-01")
        #expect(busy.status == 503)
        #expect(busy.header("Retry-After") == "1")
        let head = router.respond(to: Request(method: "HEAD", uri: "\(Router.dailyPagesPath)?from=2026-11-01&to=2026-11-01"))
        #expect(head.status == 200 && !head.sendsBody)
        #expect(self.router.respond(to: Request(method: "GET", uri: "\(Router.dailyPagesPath)?from=2026-11-01&to=2026-11-01")).status == 404)
    }

    @Test func aJournalRecordKeepsThePageAndOldRecordsReadAsTheIndex() throws {
        var visit = Visit(trustedIP: "192.0.2.7", userAgent: "ua", country: "Japan", countryCode: "JP", time: Date(timeIntervalSince1970: 1_700_000_000))
        visit.path = "/docs/" + String(repeating: "x", count: 250)
        visit.referrer = "news.example.com"
        for kind in [JournalRecord.Kind.row, .withoutRow] {
            let record = JournalRecord(kind: kind, visit: visit)
            let bytes = [UInt8](unsafeUninitializedCapacity: record.encodedLength) { buffer, count in
                record.encode(into: UnsafeMutableRawBufferPointer(buffer), position: 4096)
                count = record.encodedLength
            }
            let decoded = try #require(bytes.withUnsafeBytes { JournalRecord.decode($0, position: 4096) })
            #expect(decoded.visit.path == visit.path)
            #expect(decoded.visit.referrer == "news.example.com")
        }
        // A record as the versions before pages wrote it: no page flag, nothing after the user agent.
        var old = [UInt8](repeating: 0, count: 40)
        old[0] = 40
        old[4] = JournalRecord.Kind.row.rawValue
        old[6] = 2
        old[32] = UInt8(ascii: "J")
        old[33] = UInt8(ascii: "P")
        let decoded = try #require(old.withUnsafeBytes { JournalRecord.decode($0, position: nil) })
        #expect(decoded.visit.countryCode == "JP")
        #expect(decoded.visit.path == "/")
        #expect(decoded.visit.referrer == nil)
    }

    @Test func aBatchsCountsWithoutRowsKeepAtMostTheDailyBoundOfPages() {
        var batch = VisitBatch()
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        for index in 0..<(BatchPlan.maxKeysPerDay + 30) {
            var visit = Visit(trustedIP: nil, userAgent: "ua", country: "Japan", countryCode: "JP", time: time)
            visit.path = "/\(index)"
            visit.referrer = "r\(index).example"
            batch.countWithoutRow(visit)
        }
        #expect(batch.pagesWithoutRows.count == BatchPlan.maxKeysPerDay + 1)
        #expect(batch.pagesWithoutRows[DayKey(day: UTCTimestamp.day(time), key: BatchPlan.otherKey)] == 30)
        #expect(batch.referrersWithoutRows.count == BatchPlan.maxKeysPerDay + 1)
        #expect(batch.pagesWithoutRows.values.reduce(0, +) == BatchPlan.maxKeysPerDay + 30)
        let plan = BatchPlan(batch, at: time, keys: [:], storeIP: .full, spillID: nil)
        #expect(plan.dayPages.count == BatchPlan.maxKeysPerDay + 1)
        #expect(plan.pages.reduce(0) { $0 + $1.visitors } == BatchPlan.maxKeysPerDay + 30)
    }
}

/// The index page's template variables for the pages and referrers of the last 30 days.
struct DashboardPagesTests {
    @Test func theTopTenPagesAndReferrersAreListedTheMostFirst() throws {
        var stats = VisitorStats(totalVisitors: 100, countries: ["US": 100], lastUpdated: nil)
        stats.recentPages = Dictionary(uniqueKeysWithValues: (1...12).map { ("/p\($0)", $0 * 1_000) })
        stats.recentPages["/a<b>"] = 12_000
        stats.recentReferrers = ["b.example": 2, "a.example": 2, "c.example": 5]
        let context = Dashboard(stats: stats, days: [], refreshSeconds: 10).context
        let pages = try #require(context["pages"] as? [[String: Any]])
        #expect(pages.count == Dashboard.listedPages)
        #expect(pages.prefix(3).map { $0["path"] as? String } == ["/a<b>", "/p12", "/p11"])
        #expect(pages.first?["visitors_text"] as? String == "12,000")
        let referrers = try #require(context["referrers"] as? [[String: Any]])
        #expect(referrers.map { $0["host"] as? String } == ["c.example", "a.example", "b.example"])
        #expect(context["has_pages"] as? Bool == true)
        #expect(context["has_referrers"] as? Bool == true)
        let empty = Dashboard(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), days: [], refreshSeconds: 10).context
        #expect(empty["has_pages"] as? Bool == false)
        // Rendered, the path is escaped.
        let page = IndexTemplate.standard.render(Dashboard(stats: stats, days: [], refreshSeconds: 10))
        #expect(page.contains("<th scope=\"row\" class=\"key\">/a&lt;b&gt;</th>"))
    }
}
