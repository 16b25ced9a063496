import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@testable import VisitorCounter

struct RouterTests {
    let stats = VisitorStats(
        totalVisitors: 3, countries: ["US": 2, "XX": 1], lastUpdated: UTCTimestamp.parse("2024-03-20T12:00:00Z"))

    var router: Router {
        let pages = RenderedPages(stats: stats, maxAge: 7)
        return Router(pages: { pages }, now: { Date(timeIntervalSince1970: 0) })
    }

    @Test func indexRecordsOneVisitAndShowsTheTotals() throws {
        let response = router.respond(
            to: Request(
                method: "GET", uri: "/?utm=x", remoteAddress: "192.0.2.7", userAgent: Array("ua".utf8),
                countryCode: "us", countryName: "United States"))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "text/html; charset=utf-8")
        #expect(response.body.contains("<dd id=\"total-visitors\">3</dd>"))
        #expect(response.body.contains("<span class=\"name\">United States</span></th><td class=\"num visits\">2</td>"))
        #expect(response.body.contains("<span class=\"name\">Unknown</span>"))
        #expect(
            response.visit
                == Visit(trustedIP: "192.0.2.7", userAgent: "ua", country: "United States", countryCode: "US",
                         time: Date(timeIntervalSince1970: 0)))
    }

    @Test func theBadgeShowsTheTotalFromTheCacheAndCountsNothing() throws {
        let response = router.respond(to: Request(method: "GET", uri: "/api/sys/badge.svg"))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "image/svg+xml")
        #expect(response.header("Cache-Control") == "no-cache")
        #expect(response.visit == nil)
        #expect(response.body.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(response.body.contains(">visitors</text>") && response.body.contains(">3</text>"))
        let document = try XMLDocument(data: Data(response.body.utf8))
        let texts = try document.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
        #expect(texts == ["visitors", "3"])
    }

    @Test(arguments: [
        ("Page%20views", "Page views"), ("a+b", "a b"), ("%3Cscript%3E%26", "<script>&"), ("", "visitors"),
        ("%0A%09", "visitors"), (String(repeating: "x", count: 100), String(repeating: "x", count: 40)),
    ])
    func theBadgesLabelIsDecodedBoundedAndEscaped(query: String, label: String) throws {
        let response = router.respond(to: Request(method: "GET", uri: "/api/sys/badge.svg?label=\(query)"))
        let document = try XMLDocument(data: Data(response.body.utf8))
        let texts = try document.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
        #expect(texts == [label, "3"])
        #expect(!response.body.contains("<script>"))
    }

    @Test func headAnswersTheSameHeadersWithoutBodyOrVisit() {
        let get = router.respond(to: Request(method: "GET", uri: "/"))
        let head = router.respond(to: Request(method: "HEAD", uri: "/"))
        #expect(head.sendsBody == false)
        #expect(head.headerBlock == get.headerBlock)
        #expect(head.wireParts.body.isEmpty && head.wireParts.header == get.wireParts.header)
        #expect(get.visit != nil && head.visit == nil)
    }

    @Test func statsAnswerJSONFromTheCacheWithoutAVisit() {
        let response = router.respond(to: Request(method: "GET", uri: "/api/sys/stats?x=1"))
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.header("Cache-Control") == "max-age=7")
        #expect(response.body == stats.json)
        #expect(response.visit == nil)
    }

    /// Only the stats JSON may be cached (for the stats cache's period): every other answer counts a
    /// visit or shows the moment it was asked.
    @Test(arguments: [
        ("/", 200, "text/html; charset=utf-8"), ("/nowhere", 404, "text/html; charset=utf-8"),
        ("/api/nowhere", 404, "application/json"), ("/api/sys/stats/daily", 400, "application/json"),
        ("/api/sys/health", 200, "application/json"), ("/api/sys/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"),
    ])
    func everyAnswerButTheStatsIsNoStore(path: String, status: Int, contentType: String) {
        let pages = RenderedPages(stats: stats, maxAge: 7)
        let router = Router(
            pages: { pages },
            health: { HealthReport(statuses: [], threshold: .seconds(60), stats: stats) },
            daily: { _, _ in DailyHistory.Answer(days: []) })
        let response = router.respond(to: Request(method: "GET", uri: path))
        #expect(response.status == status)
        #expect(response.header("Content-Type") == contentType)
        #expect(response.header("Cache-Control") == "no-store")
    }

    @Test(arguments: ["POST", "PUT", "DELETE", "OPTIONS"])
    func otherMethodsAreNotAllowed(method: String) {
        let index = router.respond(to: Request(method: method, uri: "/"))
        #expect(index.status == 405)
        #expect(index.header("Allow") == "GET, HEAD")
        #expect(index.header("Content-Type") == "text/html; charset=utf-8")
        let api = router.respond(to: Request(method: method, uri: "/api/sys/stats"))
        #expect(api.status == 405)
        #expect(api.header("Allow") == "GET, HEAD")
        #expect(api.body == "{\"status\": 405, \"message\": \"\(method) is not allowed on /api/sys/stats\"}")
        #expect(index.visit == nil && api.visit == nil)
    }

    @Test func unknownPathsAreNotFound() {
        let api = router.respond(to: Request(method: "GET", uri: "/api/sys/nope"))
        #expect(api.status == 404)
        #expect(api.header("Content-Type") == "application/json")
        let page = router.respond(to: Request(method: "GET", uri: "/<b>x</b>"))
        #expect(page.status == 404)
        #expect(page.body.contains("/&lt;b&gt;x&lt;/b&gt;"))
        #expect(!page.body.contains("<b>"))
    }

    @Test(arguments: [
        ("gzip, deflate, br", true), ("GZIP", true), ("br;q=1.0, gzip;q=0.8", true), ("*", true),
        ("br", false), ("gzip;q=0", false), ("*, gzip;q=0", false), ("gzip;q=0.5, *;q=0", true), (" Gzip ; level=1 ", true), ("gzip;level=1;Q=0", false),
        ("x-gzip, deflate", false), ("gzip; q=0.000", false), ("identity", false), ("", false),
    ])
    func acceptEncoding(value: String, takesGzip: Bool) {
        #expect(Request.acceptsGzip(value) == takesGzip)
    }

    @Test func aClientThatTakesGzipGetsThePageCompressedOnce() throws {
        let pages = RenderedPages(stats: stats, maxAge: 7)
        let router = Router(pages: { pages }, now: { Date() })
        let plain = router.respond(to: Request(method: "GET", uri: "/"))
        let gzip = router.respond(to: Request(method: "GET", uri: "/", acceptsGzip: true))
        #expect(plain.header("Content-Encoding") == nil && plain.header("Vary") == "Accept-Encoding")
        #expect(gzip.header("Content-Encoding") == "gzip" && gzip.header("Vary") == "Accept-Encoding")
        let compressed = try #require(gzip.binaryBody)
        #expect(compressed.count < plain.body.utf8.count / 2)
        #expect(try gunzip(compressed) == plain.body)
        #expect(gzip.wireBytes.count == gzip.headerBlock.utf8.count + compressed.count)
        #expect(gzip.headerBlock.contains("Content-Length: \(compressed.count)\r\n"))
        // The bytes were made when the pages were rendered, not for this request.
        #expect(gzip.encoded != nil)
        let head = router.respond(to: Request(method: "HEAD", uri: "/", acceptsGzip: true))
        #expect(Array(head.wireBytes) == Array(gzip.headerBlock.utf8))
    }

    @Test func countryCodesAreEscapedOnThePage() {
        let page = RenderedPages(stats: VisitorStats(totalVisitors: 1, countries: ["<s>": 1], lastUpdated: nil), maxAge: 2)
        #expect(page.index.body.contains("data-code=\"&lt;s&gt;\""))
        #expect(!page.index.body.contains("<s>"))
    }

    @Test(arguments: [
        ("unix:/run/x.sock", ListenAddress.unix(path: "/run/x.sock")),
        ("127.0.0.1:9000", .tcp(host: "127.0.0.1", port: 9000)),
        ("[::1]:9000", .tcp(host: "::1", port: 9000)),
    ])
    func listenAddresses(argument: String, expected: ListenAddress) {
        #expect(ListenAddress(argument: argument) == expected)
    }

    @Test(arguments: ["unix:relative.sock", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", ":9000", ""])
    func badListenAddresses(argument: String) {
        #expect(ListenAddress(argument: argument) == nil)
    }

    @Test func thePagesAreSentAsBytesMadeOnceAndHeadSendsOnlyTheHeader() throws {
        let pages = RenderedPages(stats: stats, maxAge: 7)
        #expect(pages.statsJSON.encoded != nil)
        let full = Array(pages.statsJSON.headerBlock.utf8) + Array(pages.statsJSON.body.utf8)
        #expect(Array(pages.statsJSON.wireBytes) == full)
        let head = router.respond(to: Request(method: "HEAD", uri: "/api/sys/stats"))
        #expect(Array(head.wireBytes) == Array(pages.statsJSON.headerBlock.utf8))
        // A changed answer is encoded afresh.
        var changed = pages.index
        changed.headers.append((name: "X-Test", value: "1"))
        #expect(changed.encoded == nil)
        #expect(String(decoding: changed.wireBytes, as: UTF8.self).contains("X-Test: 1\r\n"))
    }
}
