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

    func stackWithKnownVisits() async throws -> LocalStack {
        try requireProgram(Self.chromium)
        // One worker: its stats JSON and its index page are rendered from one read (`RenderedPages`), so
        // once the stats show the visits the page does too. With two, the other worker's cache could
        // still be a period behind on a loaded machine.
        let stack = try await LocalStack(PageViewTests.options())
        for visit in Self.visits {
            var headers = ["X-Forwarded-For": visit.address]
            headers["Referer"] = visit.referrer
            #expect(try stack.request("GET", visit.path, headers: headers).status == 200)
        }
        try await stack.waitFor("the visits in the stats") {
            try stack.request("GET", "/api/sys/stats").body.contains("\"total_visitors\": 6,")
        }
        return stack
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
        ("phone", 390, 1900, false), ("phone-dark", 390, 1900, true), ("desktop", 1280, 1400, false),
        ("desktop-dark", 1280, 1400, true),
    ])
    func screenshots(name: String, width: Int, height: Int, dark: Bool) async throws {
        let stack = try await stackWithKnownVisits()
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
