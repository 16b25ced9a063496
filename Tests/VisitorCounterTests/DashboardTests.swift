import Foundation
import Testing

@testable import VisitorCounter

/// The index page's figures, its template and its Content-Security-Policy, without a browser; the
/// browser's view of the page is in `BrowserTests`.
struct DashboardTests {
    let now = UTCTimestamp.parse("2026-11-25T12:00:00Z")!

    func days(_ visitors: [Int], endingOn last: String = "2026-11-25") -> [DayStats] {
        let lastDay = UTCTimestamp.parseDay(last)!
        return visitors.enumerated().map { index, count in
            DayStats(
                date: UTCTimestamp.dayText(lastDay - visitors.count + 1 + index), visitors: count, uniqueVisitors: count / 2,
                countries: [:])
        }
    }

    @Test(arguments: [("GB", "\u{1F1EC}\u{1F1E7}"), ("US", "\u{1F1FA}\u{1F1F8}"), ("XX", "\u{1F310}"), ("A1", "\u{1F310}"), ("<s", "\u{1F310}")])
    func flagsAreRegionalIndicators(code: String, flag: String) {
        #expect(Dashboard.flag(forCode: code) == flag)
    }

    @Test(arguments: [(0, "0"), (999, "999"), (1000, "1,000"), (1_234_567, "1,234,567"), (-4200, "-4,200")])
    func numbersAreGroupedByThousands(value: Int, text: String) {
        #expect(Dashboard.grouped(value) == text)
    }

    @Test(arguments: [
        (-30.0, "just now"), (4.9, "just now"), (5, "5 seconds ago"), (59, "59 seconds ago"), (60, "1 minute ago"),
        (3599, "59 minutes ago"), (3600, "1 hour ago"), (7200, "2 hours ago"), (86_400, "1 day ago"), (864_000, "10 days ago"),
    ])
    func lastUpdatedIsRelative(secondsAgo: Double, text: String) {
        #expect(Dashboard.relative(now.addingTimeInterval(-secondsAgo), now: now) == text)
    }

    @Test func countriesComeByCountWithNamesFlagsAndShares() {
        let stats = VisitorStats(totalVisitors: 2001, countries: ["GB": 1000, "XX": 1, "US": 1000], lastUpdated: nil)
        let dashboard = Dashboard(stats: stats, days: [], refreshSeconds: 10, now: now)
        #expect(dashboard.countries.map(\.code) == ["GB", "US", "XX"])
        #expect(dashboard.countries.map(\.name) == ["United Kingdom", "United States", "Unknown"])
        #expect(dashboard.countries.map(\.shareTenths) == [500, 500, 0])
        let rows = dashboard.context["countries"] as! [[String: Any]]
        #expect(rows.map { $0["share_text"] as! String } == ["50.0%", "50.0%", "<0.1%"])
        #expect(rows.map { $0["visitors_text"] as! String } == ["1,000", "1,000", "1"])
    }

    @Test func theBusiestDayReachesTheTopAndEmptyDaysHaveNoBar() {
        let chart = DailyChart(days: days([0, 5, 10] + Array(repeating: 1, count: 27)))
        #expect(chart.bars.count == 30)
        #expect(chart.bars[0].height == 0)
        #expect(chart.bars[2].y == DailyChart.top)
        #expect(chart.bars[1].height == (DailyChart.baseline - DailyChart.top) / 2)
        #expect(chart.bars.allSatisfy { $0.x >= 0 && $0.x + DailyChart.barWidth <= DailyChart.width })
        #expect(chart.bars.last!.isToday && chart.bars.last!.label == "25 Nov")
        #expect(chart.ticks == ["27 Oct", "3 Nov", "11 Nov", "18 Nov", "25 Nov"])
        #expect(DailyChart(days: days([1, 2])).ticks == ["24 Nov", "25 Nov"])
        #expect(chart.summary == "42 visits in 30 days. The busiest day was 29 Oct with 10; today has 1 so far.")
    }

    @Test func aChartWithoutVisitsSaysSo() {
        let chart = DailyChart(days: days(Array(repeating: 0, count: 30)))
        #expect(chart.bars.allSatisfy { $0.height == 0 })
        #expect(chart.summary == "No visits in these 30 days.")
    }

    @Test func theStandardPageShowsTheFiguresAndNeverSaysNeverOnceWritten() {
        let stats = VisitorStats(
            totalVisitors: 12_345, countries: ["DE": 12_000, "XX": 345], lastUpdated: now.addingTimeInterval(-120),
            recent: .init(last5Minutes: 7, lastHour: 80, lastDay: 900), uniqueVisitorsToday: 4321)
        let page = IndexTemplate.standard.render(Dashboard(stats: stats, days: days([3, 4]), refreshSeconds: 10, now: now))
        #expect(page.contains("<dd id=\"total-visitors\">12,345</dd>"))
        #expect(page.contains("<dd id=\"unique-visitors-today\">4,321</dd>"))
        #expect(page.contains("<dd id=\"last-5m\">7</dd>") && page.contains("<dd id=\"last-24h\">900</dd>"))
        #expect(page.contains("datetime=\"2026-11-25T11:58:00Z\" title=\"2026-11-25 11:58:00 UTC\">2 minutes ago</time>"))
        #expect(page.contains("\u{1F1E9}\u{1F1EA}</span><span class=\"name\">Germany</span>"))
        #expect(page.contains("<rect class=\"fill\" width=\"97.2\" height=\"8\"/></svg><span class=\"percent\">97.2%</span>"))
        #expect(page.contains("<title>25 Nov: 4 visits</title>"))
        #expect(!page.contains("No visits yet"))

        let empty = IndexTemplate.standard.render(
            Dashboard(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), days: [], refreshSeconds: 10, now: now))
        #expect(empty.contains("<time id=\"last-updated\">never</time>"))
        #expect(empty.contains("No visits yet") && empty.contains("<table id=\"countries\" hidden>"))
    }

    @Test func thePolicyNamesTheInlineStyleAndScriptByHashAndNothingElse() {
        let page = RenderedPages(stats: VisitorStats(totalVisitors: 1, countries: ["US": 1], lastUpdated: now), maxAge: 2)
        let body = page.index.body
        let style = String(body[body.range(of: "<style>")!.upperBound..<body.range(of: "</style>")!.lowerBound])
        let script = String(body[body.range(of: "<script>")!.upperBound..<body.range(of: "</script>")!.lowerBound])
        #expect(
            page.index.header("Content-Security-Policy")
                == "default-src 'none'; style-src 'sha256-\(SHA256.base64(style))'; script-src 'sha256-\(SHA256.base64(script))'; "
                + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        #expect(page.index.header("X-Content-Type-Options") == "nosniff")
    }

    @Test func aPageWithoutScriptMayNotConnectAndExternalScriptsAreNotHashed() {
        #expect(
            ContentSecurityPolicy.forTemplate("<p>hi</p><script src=\"https://cdn.example/x.js\"></script><styles>")
                == ContentSecurityPolicy.strictest)
        #expect(ContentSecurityPolicy.inlineContents(of: "style", in: "<STYLE media=\"all\">a{}</STYLE><style>b{}</style>") == ["a{}", "b{}"])
        #expect(
            ContentSecurityPolicy.inlineContents(
                of: "script",
                in: "<!-- <script>old()</script> --><script data-note=\"a > b\" data-srcset=\"x\">run()</script><script\tsrc='y.js'></script>")
                == ["run()"])
    }

    @Test func thePolicyComesFromTheTemplateSoAnInjectedScriptIsNotAllowed() throws {
        let template = try IndexTemplate(text: "<style>p{}</style><p>{{{total_visitors}}}</p>", source: "test")
        let pages = RenderedPages(
            dashboard: Dashboard(stats: VisitorStats(totalVisitors: 1, countries: [:], lastUpdated: nil), days: [], refreshSeconds: 10),
            template: template, maxAge: 2)
        #expect(
            pages.index.header("Content-Security-Policy")
                == "default-src 'none'; style-src 'sha256-\(SHA256.base64("p{}"))'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        // A tag inside an inline script would change its hash with the figures: no policy can be fixed.
        #expect(try IndexTemplate(text: "<script>const n = {{total_visitors}};</script>", source: "test").contentSecurityPolicy == nil)
    }

    @Test func lineBreaksAreHashedAsTheBrowserSeesThem() throws {
        let template = try IndexTemplate(text: "<style>\r\np {}\r\n</style>\r\n", source: "test")
        #expect(template.text == "<style>\np {}\n</style>\n")
        #expect(template.contentSecurityPolicy?.contains("'sha256-\(SHA256.base64("\np {}\n"))'") == true)
    }

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (String(repeating: "a", count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ])
    func sha256MatchesTheStandardsVectors(message: String, hex: String) {
        #expect(SHA256.digest(Array(message.utf8)).map { String(format: "%02x", $0) }.joined() == hex)
    }

    @Test(arguments: [
        (112, 100, "yesterday", "+12% on yesterday", PeriodChange.Trend.up),
        (92, 100, "the previous 7 days", "\u{2212}8% on the previous 7 days", .down),
        (5, 0, "the previous 7 days", "new: none in the previous 7 days", .new),
        (5, 0, "yesterday", "new: none yesterday", .new),
        (0, 0, "yesterday", "same as yesterday", .same),
        (40, 40, "the previous 30 days", "same as the previous 30 days", .same),
        (0, 7, "yesterday", "\u{2212}100% on yesterday", .down),
        (1001, 1000, "yesterday", "+<1% on yesterday", .up),
        (999, 1000, "yesterday", "\u{2212}<1% on yesterday", .down),
        (3, 2, "yesterday", "+50% on yesterday", .up),
        (201, 200, "yesterday", "+1% on yesterday", .up),
    ] as [(Int, Int, String, String, PeriodChange.Trend)])
    func aPeriodIsComparedWithTheOneBefore(visitors: Int, previous: Int, before: String, text: String, trend: PeriodChange.Trend) {
        let change = PeriodChange(visitors: visitors, previous: previous)
        #expect(change.text(before: before) == text)
        #expect(change.trend == trend)
    }

    /// The periods and the zone reach a template as variables, and the built-in page shows them.
    @Test func thePeriodsAndTheZoneAreTemplateVariables() throws {
        var stats = VisitorStats(totalVisitors: 300, countries: ["US": 300], lastUpdated: now)
        stats.timeZone = "Asia/Kolkata"
        stats.periods = .init(today: 12, yesterday: 10, last7Days: 70, previous7Days: 80, last30Days: 300, previous30Days: 0)
        let dashboard = Dashboard(stats: stats, days: days([1, 2, 3]), refreshSeconds: 10, now: now)
        let template = try IndexTemplate(
            text: "{{time_zone}}|{{#periods}}{{key}}:{{visitors}}/{{previous}} {{trend}} {{percent}} {{change_text}}|{{/periods}}"
                + "{{#periods}}{{#is_new}}{{label}} is new{{/is_new}}{{/periods}}",
            source: "test")
        #expect(
            template.render(dashboard)
                == "Asia/Kolkata|today:12/10 up 20 +20% on yesterday|last_7_days:70/80 down -13 \u{2212}13% on the previous 7 days|"
                + "last_30_days:300/0 new  new: none in the previous 30 days|Last 30 days is new")
        let page = IndexTemplate.standard.render(dashboard)
        #expect(page.contains(#"data-period="today" data-before="yesterday"><dt>Today</dt><dd class="visits">12</dd><dd class="change up">+20% on yesterday</dd>"#))
        #expect(page.contains(#"<dd class="change new">new: none in the previous 30 days</dd>"#))
        #expect(page.contains(#"<span id="time-zone">Asia/Kolkata</span>"#))
    }

    @Test func anOwnersTemplateGetsTheSameFigures() throws {
        let template = try IndexTemplate(
            text: "{{total_visitors}} {{#countries}}{{code}}={{visitors}} {{/countries}}{{^countries}}none{{/countries}}",
            source: "test")
        let stats = VisitorStats(totalVisitors: 3, countries: ["US": 2, "GB": 1], lastUpdated: nil)
        #expect(template.render(Dashboard(stats: stats, days: [], refreshSeconds: 10)) == "3 US=2 GB=1 ")
        let pages = RenderedPages(
            dashboard: Dashboard(stats: stats, days: [], refreshSeconds: 10), template: template, maxAge: 2,
            contentSecurityPolicy: "default-src 'self'")
        #expect(pages.index.header("Content-Security-Policy") == "default-src 'self'")
    }

    @Test(arguments: [
        ("<ul>\n{{#countries}}\n<li>{{name}}</li>\n", "line 4, column 1: a section is opened but never closed"),
        ("<p>\n  {{#a}}{{/b}}\n", "line 2, column 12: a section is closed with another name than it was opened with: {{#a}}{{/b}}"),
        ("<p>{{total_visitors</p>", "line 1, column 20: a tag is not finished (a missing }} or a bad name): <p>{{total_visitors</p>"),
    ])
    func aTemplateThatDoesNotParseSaysWhereAndWhy(text: String, message: String) throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("index.mustache")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: IndexTemplateError.self) { try IndexTemplate(contentsOf: path) }
        #expect(error?.description.hasPrefix("index template \(path), ") == true, "\(String(describing: error))")
        #expect(error?.description.contains(message) == true, "\(error?.description ?? "")")
    }

    @Test func aMissingOrEmptyTemplateIsRefused() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: IndexTemplateError.self) { try IndexTemplate(contentsOf: directory.path("none.mustache")) }
        try "  \n".write(toFile: directory.path("empty.mustache"), atomically: true, encoding: .utf8)
        let error = #expect(throws: IndexTemplateError.self) { try IndexTemplate(contentsOf: directory.path("empty.mustache")) }
        #expect(error?.description == "index template \(directory.path("empty.mustache")) is empty")
    }
}

/// WCAG 2 contrast of the built-in page's colours, light and dark: 4.5:1 for text, 3:1 for the bars.
struct DashboardContrastTests {
    /// The `--name: #rrggbb` custom properties of the first `:root { … }` after `marker` in the template.
    static func palette(after marker: String) -> [String: String] {
        let text = IndexTemplate.standardText
        guard let start = text.range(of: marker), let root = text.range(of: ":root {", range: start.upperBound..<text.endIndex),
            let end = text.range(of: "}", range: root.upperBound..<text.endIndex)
        else { return [:] }
        var colours: [String: String] = [:]
        for declaration in text[root.upperBound..<end.lowerBound].split(separator: ";") {
            let parts = declaration.split(separator: ":").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if parts.count == 2, parts[0].hasPrefix("--") { colours[String(parts[0].dropFirst(2))] = parts[1] }
        }
        return colours
    }

    static func luminance(_ hex: String) -> Double {
        let value = Int(hex.dropFirst(), radix: 16) ?? 0
        func channel(_ shift: Int) -> Double {
            let c = Double((value >> shift) & 0xFF) / 255
            return c <= 0.039_28 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
        }
        return 0.2126 * channel(16) + 0.7152 * channel(8) + 0.0722 * channel(0)
    }

    static func contrast(_ a: String, _ b: String) -> Double {
        let (x, y) = (luminance(a), luminance(b))
        return (max(x, y) + 0.05) / (min(x, y) + 0.05)
    }

    @Test(arguments: ["<style>", "prefers-color-scheme: dark"])
    func coloursHaveEnoughContrast(scheme: String) {
        let colours = Self.palette(after: scheme)
        #expect(colours.count == 10, "\(colours)")
        // The periods' changes are text on the cards.
        for text in ["up", "down"] {
            let ratio = Self.contrast(colours[text] ?? "", colours["card"] ?? "")
            #expect(ratio >= 4.5, "\(scheme): \(text) on card is \(ratio):1")
        }
        for text in ["text", "muted", "accent"] {
            for background in ["bg", "card"] {
                let ratio = Self.contrast(colours[text] ?? "", colours[background] ?? "")
                #expect(ratio >= 4.5, "\(scheme): \(text) on \(background) is \(ratio):1")
            }
        }
        for (bar, background) in [("accent", "track"), ("accent-soft", "card"), ("accent", "card")] {
            let ratio = Self.contrast(colours[bar] ?? "", colours[background] ?? "")
            #expect(ratio >= 3, "\(scheme): \(bar) on \(background) is \(ratio):1")
        }
    }
}
