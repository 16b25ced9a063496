/// The kinds of answer the routes give, each with its `Content-Type` and its caching in one place.
extension Response {
    /// What a cache between the counter and the client may do with an answer.
    public enum Caching: Sendable {
        /// Keep nothing: the index page counts a visit on every `GET`, and health, metrics, the daily
        /// history and errors must show the state of the moment they are asked.
        case noStore
        /// Keep it for the stats cache's period, in which the counter would answer the same.
        case maxAge(Int)
        /// Keep it, but ask again before each use: the badge, which GitHub's image proxy and browsers
        /// would otherwise show stale for hours.
        case noCache

        var header: (name: String, value: String) {
            switch self {
            case .noStore: (name: "Cache-Control", value: "no-store")
            case .maxAge(let seconds): (name: "Cache-Control", value: "max-age=\(seconds)")
            case .noCache: (name: "Cache-Control", value: "no-cache")
            }
        }
    }

    /// `body` with its content type and caching; the other kinds go through here.
    public static func text(
        _ body: String, contentType: String = "text/plain; charset=utf-8", status: Int = 200, caching: Caching = .noStore
    ) -> Response {
        Response(status: status, headers: [(name: "Content-Type", value: contentType), caching.header], body: body)
    }

    /// `value` as `application/json`.
    public static func json(_ value: JSON, status: Int = 200, caching: Caching = .noStore) -> Response {
        text(value.text, contentType: "application/json", status: status, caching: caching)
    }

    /// `page` as UTF-8 HTML.
    public static func html(_ page: String, status: Int = 200, caching: Caching = .noStore) -> Response {
        text(page, contentType: "text/html; charset=utf-8", status: status, caching: caching)
    }
}
