import Foundation
import Testing

@testable import VisitorCounter

struct BotClassifierTests {
    /// isbot's 626 crawlers (`../shared/bots/crawlers.yml`): every one a bot.
    @Test func everyCrawlerOfTheCorpusIsABot() throws {
        let corpus = try UserAgentCorpus("crawlers.yml")
        #expect(corpus.userAgents.count >= 600, "\(corpus.name) holds \(corpus.userAgents.count) user agents")
        let missed = corpus.userAgents.filter { !BotClassifier.isBot($0) }
        #expect(missed.isEmpty, "taken for people:\n\(missed.joined(separator: "\n"))")
    }

    /// isbot's 555 browsers (`../shared/bots/browsers.yml`): none a bot.
    @Test func noBrowserOfTheCorpusIsABot() throws {
        let corpus = try UserAgentCorpus("browsers.yml")
        #expect(corpus.userAgents.count >= 500, "\(corpus.name) holds \(corpus.userAgents.count) user agents")
        let taken = corpus.userAgents.compactMap { userAgent in
            BotClassifier.finding(userAgent).map { "\($0): \(userAgent)" }
        }
        #expect(taken.isEmpty, "taken for bots:\n\(taken.joined(separator: "\n"))")
    }

    @Test(arguments: [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
        // A Cubot phone, and Google's own app: each holds a marker where it does not count.
        "Mozilla/5.0 (Linux; Android 13; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.85 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/325.0.651 GoogleApp/325 Mobile/15E148 Safari/604.1",
        // What the check before took for bots: "bot" inside a word.
        "Mozilla/5.0 (Linux; Android 9; AFTMM) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70 Safari/537.36 fuboTV/4.13",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0; Banca Caboto s.p.a.)",
    ])
    func browsersAreVisitors(userAgent: String) {
        #expect(BotClassifier.finding(userAgent) == nil)
    }

    /// Well-known bots of each kind.
    @Test(arguments: [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "Amazon-Route53-Health-Check-Service (ref b0eb04d5-cb5e-40e7-839b-558e52fc3f0d; report http://amzn.to/1vsZADi)",
        "ELB-HealthChecker/2.0",
        "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 14 subscribers; like FeedFetcher-Google)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "WhatsApp/2.23.20.0 A",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "curl/8.5.0", "Wget/1.21.3", "python-requests/2.32.3", "Go-http-client/1.1", "okhttp/4.12.0", "Java/17.0.2",
        "libwww-perl/6.72", "axios/1.7.7", "",
    ])
    func botsAreNot(userAgent: String) {
        #expect(BotClassifier.isBot(userAgent))
    }

    /// Bots no list holds, made up for this test: each is told apart by what its kind says of itself.
    @Test(arguments: [
        ("Mozilla/5.0 (compatible; Quillbot-Crawler/3.2; +https://quill.example/crawler)", "a crawler"),
        ("Examplecorp-Spider/0.9 (Windows NT 10.0)", "a spider"),
        ("acme-uptime/4.1 (pinging your site every minute)", "an uptime monitor"),
        ("NightlyFeedReader/2.3 (12 subscribers)", "a feed reader"),
        ("SiteHealth-Checker/1.0 (Linux)", "a health check"),
        ("hypothetical-client/0.3.1", "a library naming only itself"),
        ("Mozilla/5.0 (compatible; Yarrow/1.0)", "compatible with nothing"),
        ("Mozilla/5.0 Scrapester", "Mozilla and one word"),
        ("LinkUnfurler/1.0 (Linux x86_64)", "a link preview"),
        ("Tool/2.0 (Linux; contact ops@tool.example)", "a mail address"),
        ("SEO-Audit 2.0 (Windows NT 10.0; Win64)", "an SEO tool"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36 Vulnscan/2", "a scanner"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36 (+https://example.org/about)", "a link to itself"),
    ])
    func botsNoListHoldsAreToldApartByKind(userAgent: String, kind: String) {
        #expect(BotClassifier.isBot(userAgent), "\(kind): \(userAgent)")
    }

    @Test func caseDoesNotMatter() {
        #expect(BotClassifier.isBot("MOZILLA/5.0 (COMPATIBLE; GOOGLEBOT/2.1; +HTTP://WWW.GOOGLE.COM/BOT.HTML)"))
        #expect(BotClassifier.finding("Mozilla/5.0 (compatible; MyCRAWLER; Windows NT 10.0)") == .marker("crawl"))
    }
}

struct MarkerAutomatonTests {
    typealias Marker = MarkerAutomaton.Marker

    func first(_ markers: [Marker], in text: String) -> String? {
        let automaton = MarkerAutomaton(markers)
        return Array(text.utf8).withUnsafeBufferPointer { bytes in
            automaton.firstMarker(in: bytes).map { automaton.markers[$0].notation }
        }
    }

    @Test func findsMarkersInsideOthersAndIgnoresCase() {
        let markers: [Marker] = ["she", "he", "hers", "his"]
        #expect(first(markers, in: "USHERS") == "she")
        #expect(first(markers, in: "aHIs") == "his")
        #expect(first(markers, in: "ahishers") == "his")
        #expect(first(markers, in: "h e r s") == nil)
    }

    @Test func conditionsDecideWhereAMarkerCounts() {
        let markers: [Marker] = [
            "^read", #"\bbot\b"#, "end$", Marker("scan", unlessAfter: ["cam"]), Marker("java", unlessBefore: [";"]),
            Marker(#"search\b"#, inFirstWord: true),
        ]
        #expect(first(markers, in: "Reader/1.0") == "^read")
        #expect(first(markers, in: "a reader") == nil)
        #expect(first(markers, in: "a bot.") == #"\bbot\b"#)
        #expect(first(markers, in: "robot bots") == nil)
        #expect(first(markers, in: "the END") == "end$")
        #expect(first(markers, in: "the end.") == nil)
        #expect(first(markers, in: "webcamscan") == nil)
        #expect(first(markers, in: "scanner") == "scan")
        #expect(first(markers, in: "(Java; U)") == nil)
        #expect(first(markers, in: "Java/17") == "java")
        #expect(first(markers, in: "NetSearch/2") == #"^\w*search\b"#)
        #expect(first(markers, in: "Net Search/2") == nil)
    }

    /// Against a search of every marker at every place, on texts made of the markers' own letters so
    /// that they overlap often: the automaton finds the same first end.
    @Test func agreesWithASearchAtEveryPlace() {
        let markers: [Marker] = [
            "ab", "bab", "abba", "b a", "^ba", "aa$", #"\bab\b"#, Marker("ba", unlessAfter: ["a"]),
            Marker("bb", unlessBefore: ["a"]), "a b a b",
        ]
        let automaton = MarkerAutomaton(markers)
        var generator = SplitMix64(seed: 24)
        for _ in 0..<5_000 {
            let text = (0..<Int(generator.next() % 12)).map { _ in Array("abAB ".utf8)[Int(generator.next() % 5)] }
            text.withUnsafeBufferPointer { bytes in
                let found = automaton.firstMarker(in: bytes).map { automaton.markers[$0] }
                var expectedEnd: Int?
                for end in 0...bytes.count where expectedEnd == nil {
                    for marker in markers where marker.bytes.count <= end {
                        if MarkerAutomaton.matches(marker.bytes, in: bytes, at: end - marker.bytes.count),
                            marker.holds(in: bytes, end: end)
                        {
                            expectedEnd = end
                        }
                    }
                }
                #expect((found == nil) == (expectedEnd == nil), "\(String(decoding: text, as: UTF8.self))")
                if let found, let expectedEnd {
                    #expect(
                        MarkerAutomaton.matches(found.bytes, in: bytes, at: expectedEnd - found.bytes.count)
                            && found.holds(in: bytes, end: expectedEnd),
                        "\(String(decoding: text, as: UTF8.self)): \(found) does not end at \(expectedEnd)")
                }
            }
        }
    }
}

/// A small seeded generator, so that a failing case comes back at the next run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
