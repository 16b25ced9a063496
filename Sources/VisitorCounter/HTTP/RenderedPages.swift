import Foundation

/// The index page and the stats JSON, rendered once from one read of the figures and then served to
/// every request until the stats cache refreshes them.
public struct RenderedPages: Sendable {
    public let stats: VisitorStats
    public let index: Response
    /// `index` compressed with gzip, for the clients that take it; `nil` if zlib failed.
    public let indexGzip: Response?
    public let statsJSON: Response

    /// Renders both pages; `maxAge` is the stats cache period, sent as `Cache-Control: max-age`.
    /// `contentSecurityPolicy` replaces the template's own policy (`--index-csp`).
    public init(
        dashboard: Dashboard, template: IndexTemplate = .standard, maxAge: Int, contentSecurityPolicy: String? = nil
    ) {
        self.stats = dashboard.stats
        let page = template.render(dashboard)
        // Every GET / counts a visit, so no cache may answer it instead of the counter (`.noStore`).
        var index = Response.html(page)
        index.headers += [
            (
                name: "Content-Security-Policy",
                value: contentSecurityPolicy ?? template.contentSecurityPolicy ?? ContentSecurityPolicy.strictest
            ),
            (name: "X-Content-Type-Options", value: "nosniff"),
            (name: "Referrer-Policy", value: "no-referrer"),
            (name: "Vary", value: "Accept-Encoding"),
        ]
        self.index = index.prepared()
        self.indexGzip = Gzip.compress(Array(page.utf8)).map { compressed in
            var gzip = index
            gzip.headers.append((name: "Content-Encoding", value: "gzip"))
            gzip.binaryBody = compressed
            return gzip.prepared()
        }
        self.statsJSON = Response.json(dashboard.stats.asJSON, caching: .maxAge(maxAge)).prepared()
    }

    /// Both pages as `page` asks, from the figures of one read; `maxAge` is the stats cache period.
    public init(dashboard: Dashboard, page: IndexPage, maxAge: Duration) {
        self.init(
            dashboard: dashboard, template: page.template, maxAge: Int(maxAge.components.seconds),
            contentSecurityPolicy: page.contentSecurityPolicy)
    }

    /// The built-in page for `stats` alone, without days in its chart.
    public init(stats: VisitorStats, maxAge: Int) {
        self.init(
            dashboard: Dashboard(stats: stats, days: [], refreshSeconds: Dashboard.refreshSeconds(statsCache: maxAge)),
            maxAge: maxAge)
    }
}
