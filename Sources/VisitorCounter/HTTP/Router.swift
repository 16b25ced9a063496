import Foundation

/// Turns a request into a response: the site's routes as a pure function of the request and the
/// current pages. The answer to `GET /` carries the visit it counts (``Response/visit``), which the
/// responder records.
public struct Router: Sendable {
    /// The current rendered pages, from the worker's stats cache.
    public let pages: @Sendable () -> RenderedPages
    /// The health report of every worker, answered from memory (``HealthReport``).
    public let health: @Sendable () -> HealthReport?
    /// The daily rollup between two days (days since 1970-01-01, both included), encoded: kept or read
    /// from the database (``DailyHistory``).
    public let daily: (@Sendable (Int, Int) throws -> DailyHistory.Answer)?
    public let now: @Sendable () -> Date
    /// Told of the country database of every `GET /` that names one, before ``pages`` is asked, so that
    /// the page names the data its countries come from (``StatsCache/use(_:)``).
    public let geoipDatabaseSeen: @Sendable (GeoIPDatabase) -> Void
    /// The owner's addresses and ranges (`--ignore-ips`): their `GET /` is answered and counted in
    /// `ignored` only, as is one that carries the opt-out cookie (``Request/optsOut``).
    public let ignoredAddresses: PeerAllowList?
    /// Each day's pages and referrers between two days (both included), read from the database.
    public let dailyPages: (@Sendable (Int, Int) throws -> [DayPages])?

    public init(
        pages: @escaping @Sendable () -> RenderedPages,
        health: @escaping @Sendable () -> HealthReport? = { nil },
        daily: (@Sendable (Int, Int) throws -> DailyHistory.Answer)? = nil,
        now: @escaping @Sendable () -> Date = Date.init,
        geoipDatabaseSeen: @escaping @Sendable (GeoIPDatabase) -> Void = { _ in },
        ignoredAddresses: PeerAllowList? = nil,
        dailyPages: (@Sendable (Int, Int) throws -> [DayPages])? = nil
    ) {
        self.dailyPages = dailyPages
        self.ignoredAddresses = ignoredAddresses
        self.geoipDatabaseSeen = geoipDatabaseSeen
        self.pages = pages
        self.health = health
        self.daily = daily
        self.now = now
    }

    public static let statsPath = "/api/sys/stats"
    public static let dailyPath = "/api/sys/stats/daily"
    /// Each day's pages and referrers over `?from=&to=`, at most ``maxDailyPagesRange`` days.
    public static let dailyPagesPath = "/api/sys/stats/daily/pages"
    /// The longest range `/api/sys/stats/daily/pages` answers, in days: each day holds up to
    /// ``BatchPlan/maxKeysPerDay`` pages and as many referrers.
    public static let maxDailyPagesRange = 31
    public static let badgePath = "/api/sys/badge.svg"
    /// Sets the opt-out cookie for the browser that opens it; `?clear` clears it.
    public static let ignorePath = "/api/sys/ignore"
    /// The opt-out cookie's life: 400 days, the longest browsers keep one (RFC 6265bis).
    public static let optOutMaxAge = 400 * 86_400
    /// The longest range `/api/sys/stats/daily` answers, in days.
    public static let maxDailyRange = 366

    public func respond(to request: Request) -> Response {
        if let page = request.page { return pageView(request, page: page) }
        let isHead = request.method == "HEAD"
        switch request.path {
        case "/":
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            if let database = request.geoipDatabase { geoipDatabaseSeen(database) }
            let pages = pages()
            var response = withoutBody(request.acceptsGzip ? pages.indexGzip ?? pages.index : pages.index, if: isHead)
            if !isHead {
                var visit = Visit(
                    ip: request.remoteAddress, userAgent: request.userAgent, countryCode: request.countryCode,
                    countryName: request.countryName, time: now())
                visit.ignored = isIgnored(request)
                visit.referrer = Visit.referrerHost(request.referer, siteHost: request.host)
                response.visit = visit
            }
            return response
        case Router.ignorePath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            return withoutBody(optOut(clear: request.queryParameters["clear"] != nil), if: isHead)
        case Router.statsPath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            return withoutBody(pages().statsJSON, if: isHead)
        case Router.dailyPath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            return withoutBody(dailyHistory(request), if: isHead)
        case Router.dailyPagesPath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            return withoutBody(dailyPagesAnswer(request), if: isHead)
        case Router.badgePath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            let badge = Badge(label: request.queryParameters["label"], count: pages().stats.totalVisitors)
            return withoutBody(.text(badge.svg, contentType: "image/svg+xml", caching: .noCache), if: isHead)
        case HealthReport.healthPath, HealthReport.metricsPath:
            guard request.method == "GET" || isHead else { return methodNotAllowed(request) }
            guard var report = health() else { return error(404, "no such page: \(request.path)", for: request) }
            // This request's own params: the database the nginx worker that forwarded it has loaded.
            report.geoipDatabase = request.geoipDatabase
            let response = request.path == HealthReport.healthPath ? report.healthResponse : report.metricsResponse
            return withoutBody(response, if: isHead)
        default:
            return error(404, "no such page: \(request.path)", for: request)
        }
    }

    /// A page of the site that nginx served from its files and mirrored here (`deploy/nginx.conf`):
    /// `204` with no body, and for a `GET` the visit, counted as `GET /` is, under the page's path. Any
    /// other method (nginx's mirror keeps the page's, `HEAD` included) counts nothing, nor does a `GET`
    /// of a later part of a file (``Request/asksForTheStart``).
    private func pageView(_ request: Request, page: [UInt8]) -> Response {
        var response = Self.noContent
        guard request.method == "GET", request.asksForTheStart else { return response }
        var visit = Visit(
            ip: request.remoteAddress, userAgent: request.userAgent, countryCode: request.countryCode,
            countryName: request.countryName, time: now())
        visit.ignored = isIgnored(request)
        visit.path = Visit.normalisedPath(page)
        visit.referrer = Visit.referrerHost(request.referer, siteHost: request.host)
        response.visit = visit
        return response
    }

    /// The answer to every page view, its bytes made once.
    private static let noContent = Response(status: 204, headers: [], body: "").prepared()

    /// Whether a `GET /` is the owner's: from an address of `--ignore-ips` (as nginx passes it, after
    /// realip), or with the opt-out cookie.
    func isIgnored(_ request: Request) -> Bool {
        if request.optsOut { return true }
        guard let ignoredAddresses, let address = request.remoteAddress.flatMap(IPAddress.init) else { return false }
        return ignoredAddresses.contains(address)
    }

    /// The page of ``ignorePath``: sets (or with `clear`, clears) the opt-out cookie, with `Path=/`
    /// and `SameSite=Lax` so that it goes with every visit to the site and with no request another
    /// site makes, and says what it did. The only cookie the counter ever sets.
    private func optOut(clear: Bool) -> Response {
        let name = Request.optOutCookie
        let (cookie, done, other) =
            clear
            ? ("\(name)=; Max-Age=0; Path=/; SameSite=Lax; HttpOnly",
                "This browser's visits count again: the cookie <code>\(name)</code> is cleared.",
                "<a href=\"\(Router.ignorePath)\">Stop counting this browser's visits</a>")
            : ("\(name)=1; Max-Age=\(Router.optOutMaxAge); Path=/; SameSite=Lax; HttpOnly",
                "This browser's visits are no longer counted: it holds the cookie <code>\(name)=1</code> for 400 days. "
                    + "Its requests are answered as usual and counted only in <code>ignored</code>.",
                "<a href=\"\(Router.ignorePath)?clear\">Count this browser's visits again</a>")
        var response = Response.html(
            """
            <!DOCTYPE html>
            <html lang="en">
            <head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Visitor counter: your own visits</title></head>
            <body>
            <p>\(done)</p>
            <p>\(other). <a href="/">The counter</a>.</p>
            </body>
            </html>

            """)
        response.headers.append((name: "Set-Cookie", value: cookie))
        response.headers.append((name: "Content-Security-Policy", value: "default-src 'none'"))
        return response
    }

    /// `{"days": [...]}` for `?from=YYYY-MM-DD&to=YYYY-MM-DD` (gzip for a client that takes it), or a
    /// `400` that says what is wrong.
    private func dailyHistory(_ request: Request) -> Response {
        guard let daily else { return error(404, "no such page: \(request.path)", for: request) }
        let parameters = request.queryParameters
        guard let fromText = parameters["from"], let toText = parameters["to"] else {
            return error(400, "from and to are required, as YYYY-MM-DD", for: request)
        }
        guard let from = UTCTimestamp.parseDay(fromText) else {
            return error(400, "from is not a date as YYYY-MM-DD: \(fromText)", for: request)
        }
        guard let to = UTCTimestamp.parseDay(toText) else {
            return error(400, "to is not a date as YYYY-MM-DD: \(toText)", for: request)
        }
        guard from <= to else { return error(400, "from (\(fromText)) is after to (\(toText))", for: request) }
        guard to - from < Router.maxDailyRange else {
            return error(400, "the range is longer than \(Router.maxDailyRange) days", for: request)
        }
        let answer: DailyHistory.Answer
        do {
            answer = try daily(from, to)
        } catch let busy as DailyHistory.Busy {
            var response = self.error(503, "\(busy); retry in \(busy.retryAfter) s", for: request)
            response.headers.append((name: "Retry-After", value: "\(busy.retryAfter)"))
            return response
        } catch {
            return self.error(503, "the daily history cannot be read now: \(error)", for: request)
        }
        return answer.response(acceptsGzip: request.acceptsGzip)
    }

    /// `{"days": [{"date": "…", "pages": {...}, "referrers": {...}}, ...]}` for `?from=&to=`, or a `400`
    /// that says what is wrong, or a `503` while another read of this worker is under way.
    private func dailyPagesAnswer(_ request: Request) -> Response {
        guard let dailyPages else { return error(404, "no such page: \(request.path)", for: request) }
        let range: ClosedRange<Int>
        switch dayRange(request, maxDays: Router.maxDailyPagesRange) {
        case .success(let days): range = days
        case .failure(let failure): return failure.response
        }
        do {
            let days = try dailyPages(range.lowerBound, range.upperBound)
            return .json(["days": .array(days.map(\.asJSON))])
        } catch let busy as DailyHistory.Busy {
            var response = self.error(503, "\(busy); retry in \(busy.retryAfter) s", for: request)
            response.headers.append((name: "Retry-After", value: "\(busy.retryAfter)"))
            return response
        } catch {
            return self.error(503, "the daily pages cannot be read now: \(error)", for: request)
        }
    }

    /// An error answer as a value a `Result` can carry.
    private struct Failure: Error { let response: Response }

    /// The days of `?from=YYYY-MM-DD&to=YYYY-MM-DD`, at most `maxDays` of them, or the `400` that says
    /// what is wrong.
    private func dayRange(_ request: Request, maxDays: Int) -> Result<ClosedRange<Int>, Failure> {
        let parameters = request.queryParameters
        func failure(_ message: String) -> Result<ClosedRange<Int>, Failure> {
            .failure(Failure(response: error(400, message, for: request)))
        }
        guard let fromText = parameters["from"], let toText = parameters["to"] else {
            return failure("from and to are required, as YYYY-MM-DD")
        }
        guard let from = UTCTimestamp.parseDay(fromText) else { return failure("from is not a date as YYYY-MM-DD: \(fromText)") }
        guard let to = UTCTimestamp.parseDay(toText) else { return failure("to is not a date as YYYY-MM-DD: \(toText)") }
        guard from <= to else { return failure("from (\(fromText)) is after to (\(toText))") }
        guard to - from < maxDays else { return failure("the range is longer than \(maxDays) days") }
        return .success(from...to)
    }

    /// For `HEAD`: the same headers, `Content-Length` included, as the `GET` would send, and no body.
    private func withoutBody(_ response: Response, if isHead: Bool) -> Response {
        var response = response
        response.sendsBody = !isHead
        return response
    }

    private func methodNotAllowed(_ request: Request) -> Response {
        var response = error(405, "\(request.method) is not allowed on \(request.path)", for: request)
        response.headers.append((name: "Allow", value: "GET, HEAD"))
        return response
    }

    /// JSON `{"status": N, "message": "…"}` under `/api/`, a short HTML page elsewhere.
    private func error(_ status: Int, _ message: String, for request: Request) -> Response {
        if request.path.hasPrefix("/api/") {
            return .json(["status": .int(status), "message": .string(message)], status: status)
        }
        let title = "\(status) \(Response.reason(status))"
        return .html(
            """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(title)</title></head>
            <body><h1>\(title)</h1><p>\(HTML.escape(message))</p></body></html>

            """, status: status)
    }
}
