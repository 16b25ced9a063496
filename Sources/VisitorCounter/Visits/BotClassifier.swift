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
    /// The markers by their first byte: the request thread asks for every visit, so each position of
    /// the user agent is compared with the one or two markers that can start there, not with all 41.
    private static let markersByFirstByte: [[[UInt8]]] = {
        var table = [[[UInt8]]](repeating: [], count: 256)
        for marker in markerBytes { table[Int(marker[0])].append(marker) }
        return table
    }()

    public static func isBot(_ userAgent: String) -> Bool {
        var lowered = Array(userAgent.utf8)
        guard !lowered.isEmpty else { return true }
        for index in lowered.indices where lowered[index] >= UInt8(ascii: "A") && lowered[index] <= UInt8(ascii: "Z") {
            lowered[index] += 32
        }
        for exception in exceptionBytes { blank(exception, in: &lowered) }
        let table = markersByFirstByte
        return lowered.withUnsafeBufferPointer { text in
            for start in text.indices {
                for marker in table[Int(text[start])] where matches(marker, in: text, at: start) { return true }
            }
            return false
        }
    }

    /// Overwrites every occurrence of `piece` in `text` with spaces.
    private static func blank(_ piece: [UInt8], in text: inout [UInt8]) {
        text.withUnsafeMutableBufferPointer { buffer in
            var start = 0
            while start + piece.count <= buffer.count {
                if matches(piece, in: UnsafeBufferPointer(buffer), at: start) {
                    for index in start..<(start + piece.count) { buffer[index] = UInt8(ascii: " ") }
                    start += piece.count
                } else {
                    start += 1
                }
            }
        }
    }

    /// Whether `text` holds `piece` at `start`.
    private static func matches(_ piece: [UInt8], in text: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        guard start + piece.count <= text.count else { return false }
        for offset in piece.indices where text[start + offset] != piece[offset] { return false }
        return true
    }
}
