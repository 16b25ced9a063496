import Foundation

/// The index page and the stats JSON, rendered once from one read of the totals and then served to
/// every request until the stats cache refreshes them.
public struct RenderedPages: Sendable {
    public let stats: VisitorStats
    public let index: Response
    public let statsJSON: Response

    /// Renders both pages; `maxAge` is the stats cache period, sent as `Cache-Control: max-age`.
    public init(stats: VisitorStats, maxAge: Int) {
        self.stats = stats
        self.index = Response(
            status: 200,
            headers: [
                (name: "Content-Type", value: "text/html; charset=utf-8"),
                // Every GET / counts a visit, so no cache may answer it instead of the counter.
                (name: "Cache-Control", value: "no-store"),
            ],
            body: IndexPage.render(stats)
        ).prepared()
        self.statsJSON = Response(
            status: 200,
            headers: [
                (name: "Content-Type", value: "application/json"),
                (name: "Cache-Control", value: "max-age=\(maxAge)"),
            ],
            body: stats.json
        ).prepared()
    }
}

/// The small HTML page `GET /` answers: the total and a table of countries.
enum IndexPage {
    static func render(_ stats: VisitorStats) -> String {
        let rows = stats.countriesByCount.map { country in
            let name = country.code == Visit.unknownCountryCode
                ? Visit.unknownCountryName : (CountryNames.name(forCode: country.code) ?? country.code)
            return "<tr><td>\(HTML.escape(name))</td><td>\(HTML.escape(country.code))</td>"
                + "<td class=\"n\">\(country.visitors)</td></tr>"
        }.joined(separator: "\n")
        let updated = stats.lastUpdated.map { UTCTimestamp.format($0) } ?? "never"
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Visitors</title>
            <style>
            body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
            table { border-collapse: collapse; width: 100%; }
            th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ddd; }
            .n { text-align: right; font-variant-numeric: tabular-nums; }
            </style>
            </head>
            <body>
            <h1>Visitors</h1>
            <p><strong id="total">\(stats.totalVisitors)</strong> visits in all. Last updated \(updated).</p>
            <p>\(stats.recent.last5Minutes) in the last 5 minutes, \(stats.recent.lastHour) in the last hour, \
            \(stats.recent.lastDay) in the last 24 hours. \(stats.bots) requests from bots, not counted.</p>
            <table>
            <thead><tr><th scope="col">Country</th><th scope="col">Code</th><th scope="col" class="n">Visits</th></tr></thead>
            <tbody>
            \(rows)
            </tbody>
            </table>
            </body>
            </html>

            """
    }
}
