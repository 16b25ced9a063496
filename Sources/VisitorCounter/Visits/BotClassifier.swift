/// Tells crawlers, monitors, headless browsers and HTTP libraries from people, by their user agent.
///
/// A user agent is a bot when it is empty or contains one of ``markers``, compared without regard to
/// ASCII case. The list is short on purpose: every well-behaved crawler names itself, and most do so
/// with "bot", "crawl" or "spider". Browsers never carry any of these words.
public enum BotClassifier {
    /// Lower-case pieces of user agents that mark a bot.
    public static let markers: [String] = [
        // Crawlers: Googlebot, bingbot, DuckDuckBot, YandexBot, Applebot, AhrefsBot, Baiduspider, …
        "bot", "crawl", "spider", "slurp", "bingpreview", "facebookexternalhit", "mediapartners-google",
        "feedfetcher", "archiver", "scrapy",
        // Uptime monitors and link checkers.
        "monitor", "pingdom", "statuscake", "uptime", "check_http", "linkcheck",
        // Headless and automated browsers.
        "headless", "phantomjs", "lighthouse", "selenium", "puppeteer", "playwright",
        // HTTP libraries and command-line clients.
        "curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp", "go-http-client",
        "java/", "okhttp", "libwww-perl", "apache-httpclient", "node-fetch", "axios/", "guzzlehttp", "httpie",
        "postmanruntime", "insomnia", "winhttp", "libcurl",
    ]

    /// Lower-case pieces of people's user agents that hold a marker: Cubot is a maker of Android phones.
    public static let exceptions: [String] = ["cubot"]

    private static let markerBytes: [[UInt8]] = markers.map { Array($0.utf8) }
    private static let exceptionBytes: [[UInt8]] = exceptions.map { Array($0.utf8) }

    public static func isBot(_ userAgent: String) -> Bool {
        var lowered = Array(userAgent.utf8)
        guard !lowered.isEmpty else { return true }
        for index in lowered.indices where lowered[index] >= UInt8(ascii: "A") && lowered[index] <= UInt8(ascii: "Z") {
            lowered[index] += 32
        }
        for exception in exceptionBytes { blank(exception, in: &lowered) }
        return markerBytes.contains { marker in contains(lowered, marker) }
    }

    /// Overwrites every occurrence of `piece` in `text` with spaces.
    private static func blank(_ piece: [UInt8], in text: inout [UInt8]) {
        guard piece.count <= text.count else { return }
        var start = 0
        while start <= text.count - piece.count {
            if text[start..<(start + piece.count)].elementsEqual(piece) {
                for index in start..<(start + piece.count) { text[index] = UInt8(ascii: " ") }
                start += piece.count
            } else {
                start += 1
            }
        }
    }

    private static func contains(_ text: [UInt8], _ marker: [UInt8]) -> Bool {
        guard marker.count <= text.count else { return false }
        let first = marker[0]
        var start = 0
        while start <= text.count - marker.count {
            if text[start] == first {
                var matched = 1
                while matched < marker.count && text[start + matched] == marker[matched] { matched += 1 }
                if matched == marker.count { return true }
            }
            start += 1
        }
        return false
    }
}
