import Foundation
import Testing
import VisitorCounter

/// The index page as Debian's Chromium renders it, headless, through the local nginx stack: the DOM
/// after the page's script has run, the console, and screenshots at phone and desktop widths, which
/// are written to `test-artefacts/` as the test's artefacts.
///
/// Chromium's user agent says "HeadlessChrome", so its own requests count as bots, not visits: the
/// totals stay the known ones however often the browser loads the page.
@Suite(.serialized, .tags(.browser, .nginx))
struct BrowserTests {
    static let chromium = "/usr/bin/chromium"
    static let artefacts = repositoryRoot.appendingPathComponent("test-artefacts")

    /// Three visits from GB, two from US, one from an address GeoIP does not know: of the counter's page
    /// and of the site's pages, some from other sites.
    static let visits: [(address: String, path: String, referrer: String?)] = [
        ("81.2.69.142", "/", "https://news.example.com/a"), ("81.2.69.142", "/about.html", "https://news.example.com/b"),
        ("81.2.69.142", "/about.html", nil), ("8.8.8.8", "/docs/", "https://search.example.org/?q=x"), ("8.8.8.8", "/", nil),
        ("10.1.2.3", "/about.html", nil),
    ]

    /// With `history`, a folder the caller keeps, the database there has 8 visits of yesterday and 2 of 8 days ago before the counter
    /// starts, so the periods go up, down and are new: today 6 is −25% on yesterday's 8, the last 7
    /// days' 14 +600% on the 2 before, and the last 30 days' 16 new.
    func stackWithKnownVisits(history folder: TemporaryDirectory? = nil) async throws -> LocalStack {
        try requireProgram(Self.chromium)
        var options = PageViewTests.options()
        var total = Self.visits.count
        if let folder {
            options.databaseDirectory = folder.url.path
            options.database = folder.path("visitors.sqlite")
            let store = try SQLiteStore(path: folder.path("visitors.sqlite"))
            let now = Date()
            for (daysAgo, count) in [(1.0, 8), (8.0, 2)] {
                let time = now - daysAgo * 86_400
                let visits = (0..<count).map {
                    Visit(trustedIP: "192.0.2.\($0)", userAgent: "Mozilla/5.0 test", country: "France", countryCode: "FR", time: time)
                }
                try store.write(VisitBatch(counting: visits), at: time)
                total += count
            }
        }
        // One worker: its stats JSON and its index page are rendered from one read (`RenderedPages`), so
        // once the stats show the visits the page does too. With two, the other worker's cache could
        // still be a period behind on a loaded machine.
        let stack = try await LocalStack(options)
        for visit in Self.visits {
            var headers = ["X-Forwarded-For": visit.address]
            headers["Referer"] = visit.referrer
            #expect(try stack.request("GET", visit.path, headers: headers).status == 200)
        }
        try await stack.waitFor("the visits in the stats") {
            try stack.request("GET", "/api/sys/stats").body.contains("\"total_visitors\": \(total),")
        }
        return stack
    }

    /// The periods' cards as (period, visits, trend, change) from a DOM dump.
    func periodCards(in dom: String) -> [[String]] {
        allMatches(
            of: #"<div class="card" data-period="([a-z0-9_]+)" data-before="[^"]*"><dt>[^<]*</dt><dd class="visits">([^<]*)</dd><dd class="change ([a-z]+)">([^<]*)</dd></div>"#,
            in: dom)
    }

    /// The periods at phone and desktop widths, light and dark: as served, and as the page's script
    /// writes them again from `/api/sys/stats` (its own wording of the change, which must be the
    /// server's), with an empty console.
    @Test(arguments: [("phone", 390, false), ("phone-dark", 390, true), ("desktop", 1280, false), ("desktop-dark", 1280, true)])
    func thePeriodsShowTheirChangeOnThePeriodBefore(name: String, width: Int, dark: Bool) async throws {
        let history = try TemporaryDirectory()
        let stack = try await stackWithKnownVisits(history: history)
        defer { withExtendedLifetime(history) {} }
        let expected = [
            ["today", "6", "down", "\u{2212}25% on yesterday"],
            ["last_7_days", "14", "up", "+600% on the previous 7 days"],
            ["last_30_days", "16", "new", "new: none in the previous 30 days"],
        ]
        let look = ["--window-size=\(width),1400"] + (dark ? ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] : [])
        let (served, console) = try chromium(stack, look + ["--dump-dom"], name: "chromium-periods-\(name)")
        #expect(console.isEmpty, "console: \(console)")
        #expect(!served.contains("data-refreshed-at"))
        #expect(periodCards(in: served) == expected, "\(served)")
        #expect(served.contains(#"<span id="time-zone">UTC</span>"#))
        let (refreshed, later) = try chromium(stack, look + ["--virtual-time-budget=15000", "--dump-dom"], name: "chromium-periods-\(name)-refreshed")
        #expect(later.isEmpty, "console: \(later)")
        #expect(refreshed.contains("data-refreshed-at=\""), "the page's script did not refresh the figures")
        #expect(periodCards(in: refreshed) == expected, "\(refreshed)")
    }

    /// Runs Chromium on the stack's index page; answers what it printed and its console lines.
    func chromium(_ stack: LocalStack, _ arguments: [String], name: String) throws -> (stdout: String, console: [String]) {
        try chromium(url: "http://127.0.0.1:\(stack.port)/", arguments, in: stack.directory, name: name)
    }

    func chromium(url: String, _ arguments: [String], in directory: TemporaryDirectory, name: String) throws
        -> (stdout: String, console: [String])
    {
        let profile = try TemporaryDirectory()
        let browser = try ChildProcess(
            URL(fileURLWithPath: Self.chromium),
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.url.path)",
                "--enable-logging=stderr", "--v=0",
            ] + arguments + [url],
            in: directory, name: name)
        let status = browser.wait()
        guard status == 0 else { throw TestFailure("chromium exited with \(status): \(browser.stderr.suffix(2000))") }
        let console = browser.stderr.split(separator: "\n").map(String.init).filter { $0.contains(":CONSOLE") }
        return (browser.stdout, console)
    }

    /// `<dd id="ID">TEXT</dd>` from a DOM dump.
    func figure(_ id: String, in dom: String) -> String? {
        firstMatch(of: "<dd id=\"\(id)\">([^<]*)</dd>", in: dom).first
    }

    /// The rows of the pages' or the referrers' table as (key, visits), in order.
    func listRows(_ id: String, in dom: String) -> [[String]] {
        let table = firstMatch(of: "<table id=\"\(id)\">([\\s\\S]*?)</table>", in: dom).first ?? ""
        return allMatches(of: #"<tr><th scope="row" class="key">([^<]*)</th><td class="num">([^<]*)</td></tr>"#, in: table)
    }

    /// The countries table's rows as (code, name, visits), in order.
    func countryRows(in dom: String) -> [(code: String, name: String, visits: String)] {
        allMatches(
            of: #"<tr data-code="([A-Z]{2})"><th scope="row"><span class="flag" aria-hidden="true">[^<]*</span><span class="name">([^<]*)</span></th><td class="num visits">([^<]*)</td>"#,
            in: dom
        ).map { (code: $0[0], name: $0[1], visits: $0[2]) }
    }

    @Test func theRenderedPageShowsTheTotalsAndCountriesInOrderWithoutConsoleErrors() async throws {
        let stack = try await stackWithKnownVisits()
        // 15 s of virtual time: the page's script refreshes the figures from /api/sys/stats after 10.
        let (dom, console) = try chromium(stack, ["--virtual-time-budget=15000", "--dump-dom"], name: "chromium-dom")
        #expect(console.isEmpty, "console: \(console)")
        #expect(figure("total-visitors", in: dom) == "6")
        #expect(figure("last-5m", in: dom) == "6")
        let rows = countryRows(in: dom)
        #expect(rows.map(\.code) == ["GB", "US", "XX"], "\(dom)")
        #expect(rows.map(\.name) == ["United Kingdom", "United States", "Unknown"])
        #expect(rows.map(\.visits) == ["3", "2", "1"])
        #expect(dom.contains("<span class=\"percent\">50.0%</span>"))
        // The script ran, rebuilt the table from the stats JSON, and left the same figures.
        #expect(dom.contains("data-refreshed-at=\""), "the page's script did not refresh the figures")
        #expect(dom.contains(": 6 visits</title>"), "today's bar")
        #expect(listRows("pages", in: dom) == [["/about.html", "3"], ["/", "2"], ["/docs/", "1"]], "\(dom)")
        #expect(listRows("referrers", in: dom) == [["news.example.com", "2"], ["search.example.org", "1"]])
    }

    /// The console check above would pass in silence if Chromium stopped printing console lines.
    @Test func theConsoleCheckSeesWhatAPageLogs() throws {
        try requireProgram(Self.chromium)
        let directory = try TemporaryDirectory()
        let page = directory.path("console.html")
        try "<!DOCTYPE html><title>probe</title><script>console.error('probe-error')</script>"
            .write(toFile: page, atomically: true, encoding: .utf8)
        let (_, console) = try chromium(url: "file://\(page)", ["--dump-dom"], in: directory, name: "chromium-probe")
        #expect(console.contains { $0.contains("probe-error") }, "console: \(console)")
    }

    /// Chromium's `--dump-dom` needs scripts on, so "JavaScript off" is checked as the DOM before the
    /// page's script has changed anything: until its first refresh the script only sets a timer, and
    /// everything shown is what the server rendered.
    @Test func thePageIsCompleteBeforeItsScriptChangesAnything() async throws {
        let stack = try await stackWithKnownVisits()
        let (dom, console) = try chromium(stack, ["--dump-dom"], name: "chromium-as-served")
        #expect(console.isEmpty, "console: \(console)")
        #expect(!dom.contains("data-refreshed-at"))
        #expect(figure("total-visitors", in: dom) == "6")
        #expect(countryRows(in: dom).map(\.code) == ["GB", "US", "XX"])
        #expect(countryRows(in: dom).map(\.visits) == ["3", "2", "1"])
        #expect(dom.contains(": 6 visits</title>"), "today's bar")
        #expect(listRows("pages", in: dom) == [["/about.html", "3"], ["/", "2"], ["/docs/", "1"]])
        #expect(listRows("referrers", in: dom) == [["news.example.com", "2"], ["search.example.org", "1"]])
    }

    @Test(arguments: [
        ("phone", 390, 2000, false), ("phone-dark", 390, 2000, true), ("desktop", 1280, 1500, false),
        ("desktop-dark", 1280, 1500, true),
    ])
    func screenshots(name: String, width: Int, height: Int, dark: Bool) async throws {
        let history = try TemporaryDirectory()
        let stack = try await stackWithKnownVisits(history: history)
        defer { withExtendedLifetime(history) {} }
        try FileManager.default.createDirectory(at: Self.artefacts, withIntermediateDirectories: true)
        let file = Self.artefacts.appendingPathComponent("dashboard-\(name).png")
        try? FileManager.default.removeItem(at: file)
        let (_, console) = try chromium(
            stack,
            ["--hide-scrollbars", "--window-size=\(width),\(height)", "--screenshot=\(file.path)"]
                + (dark ? ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] : []),
            name: "chromium-\(name)")
        #expect(console.isEmpty, "console: \(console)")
        let png = try Data(contentsOf: file)
        // The PNG header's IHDR holds the width and height, big-endian, at bytes 16 and 20.
        let bytes = [UInt8](png.prefix(24))
        #expect(bytes.count == 24 && bytes[1...3] == [0x50, 0x4E, 0x47][...], "not a PNG")
        let pngWidth = bytes[16...19].reduce(0) { $0 << 8 | Int($1) }
        #expect(pngWidth == width)
        print("screenshot: \(file.path) (\(png.count) bytes)")
    }
}

/// The capture groups of the first match of `pattern` in `text`.
func firstMatch(of pattern: String, in text: String) -> [String] {
    allMatches(of: pattern, in: text).first ?? []
}

/// The capture groups of every match of `pattern` in `text`.
func allMatches(of pattern: String, in text: String) -> [[String]] {
    guard let expression = try? NSRegularExpression(pattern: pattern) else { return [] }
    let range = NSRange(text.startIndex..., in: text)
    return expression.matches(in: text, range: range).map { match in
        (1..<match.numberOfRanges).map { index in
            Range(match.range(at: index), in: text).map { String(text[$0]) } ?? ""
        }
    }
}
