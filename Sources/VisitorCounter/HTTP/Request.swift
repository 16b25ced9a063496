/// What the router needs of a FastCGI request, read from the params nginx sends.
///
/// The country comes only from `GEOIP_COUNTRY_CODE` and `GEOIP_COUNTRY_NAME`, which nginx sets with
/// `fastcgi_param`: client headers arrive as `HTTP_*` params, so no header can produce these names.
public struct Request: Sendable, Equatable {
    public var method: String
    /// The path of `REQUEST_URI`, without the query string.
    public var path: String
    /// What follows the `?` of `REQUEST_URI`, if anything.
    public var query: String
    public var remoteAddress: String?
    public var userAgent: [UInt8]
    public var countryCode: String?
    public var countryName: String?
    /// The client takes a gzip body (`Accept-Encoding`, see ``acceptsGzip(_:)``).
    public var acceptsGzip: Bool
    /// The country database nginx looked the client up in (`GEOIP_DATABASE_BUILD`, `GEOIP_DATABASE_TYPE`).
    public var geoipDatabase: GeoIPDatabase?
    /// The `Cookie` header's bytes (`HTTP_COOKIE`): only the opt-out cookie is looked for (``optsOut``).
    public var cookie: [UInt8] = []
    /// The page nginx served, for a page view that its `mirror` passes on (`VISITOR_COUNTER_PAGE`, a
    /// param only the mirror's `internal` location sets: see ``Router/respond(to:)``); `nil` otherwise.
    public var page: [UInt8]?
    /// The `Referer` header's bytes (`HTTP_REFERER`).
    public var referer: [UInt8] = []
    /// The `Host` header's bytes (`HTTP_HOST`), else the server's name: what a referrer of the site
    /// itself names.
    public var host: [UInt8] = []
    /// The `Range` header's bytes (`HTTP_RANGE`), when there is one.
    public var range: [UInt8]?

    public init(
        method: String, uri: String, remoteAddress: String? = nil, userAgent: [UInt8] = [],
        countryCode: String? = nil, countryName: String? = nil, acceptsGzip: Bool = false,
        geoipDatabase: GeoIPDatabase? = nil, cookie: [UInt8] = [], page: [UInt8]? = nil, referer: [UInt8] = [],
        host: [UInt8] = [], range: [UInt8]? = nil
    ) {
        self.range = range
        self.cookie = cookie
        self.page = page
        self.referer = referer
        self.host = host
        self.acceptsGzip = acceptsGzip
        self.geoipDatabase = geoipDatabase
        self.method = method
        if let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            self.path = String(uri[..<mark])
            self.query = String(uri[uri.utf8.index(after: mark)...])
        } else {
            self.path = uri
            self.query = ""
        }
        self.remoteAddress = remoteAddress
        self.userAgent = userAgent
        self.countryCode = countryCode
        self.countryName = countryName
    }
}

extension Request {
    /// The cookie that keeps a browser's visits out of the counts, set and cleared by
    /// ``Router/ignorePath``.
    public static let optOutCookie = "visitor_counter_ignore"

    /// Whether the `Cookie` header holds `visitor_counter_ignore=1` among its `name=value` pairs.
    /// `visitor_counter_ignore=1` as bytes, made once: requests with cookies look for it.
    private static let optOutPair = Array("\(optOutCookie)=1".utf8)

    public var optsOut: Bool {
        guard !cookie.isEmpty else { return false }
        let wanted = Self.optOutPair
        for pair in cookie.split(separator: UInt8(ascii: ";")) {
            let trimmed = pair.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            if trimmed.reversed().drop(while: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }).reversed().elementsEqual(wanted) {
                return true
            }
        }
        return false
    }
}

extension Request {
    /// Whether the request asks for the start of its file: no `Range`, or one from byte 0. A PDF
    /// viewer or a download manager asks for a file in many ranges, and only the first is a visit.
    public var asksForTheStart: Bool {
        guard let range else { return true }
        return range.starts(with: Array("bytes=0-".utf8))
    }
}

extension Request {
    /// The query's `name=value` pairs; the last one wins when a name repeats. Values are taken as they
    /// are: the only parameters read are dates, which need no decoding.
    public var queryParameters: [String: String] {
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            parameters[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return parameters
    }
}

extension Request {
    /// Whether an `Accept-Encoding` value takes gzip: `gzip` listed without `q=0`, or else `*` without
    /// it (RFC 9110, 12.5.3). `gzip, deflate, br` does; `br`, `gzip;q=0`, `*, gzip;q=0` and
    /// `identity` do not.
    public static func acceptsGzip(_ acceptEncoding: String) -> Bool {
        acceptsGzip(acceptEncoding.utf8)
    }

    /// The same, read from the param's bytes as they are, without a copy: it runs for every request.
    public static func acceptsGzip<Bytes: BidirectionalCollection<UInt8>>(_ value: Bytes) -> Bool {
        var gzip: Bool?
        var any: Bool?
        for item in value.pieces(separatedBy: ",") {
            let codingEnd = item.firstIndex(of: UInt8(ascii: ";")) ?? item.endIndex
            let coding = item[..<codingEnd].trimmingSpaces()
            if coding.elementsEqual("gzip".utf8, by: { $0 | 0x20 == $1 }) {
                gzip = qualityIsPositive(item[codingEnd...])
            } else if coding.elementsEqual("*".utf8) {
                any = qualityIsPositive(item[codingEnd...])
            }
        }
        return gzip ?? any ?? false
    }

    /// `;q=0` or `;q=0.000` among the parameters means "not this coding"; no `q`, or one that is not a
    /// number, means it is taken.
    private static func qualityIsPositive<Bytes: BidirectionalCollection<UInt8>>(_ parameters: Bytes) -> Bool {
        for parameter in parameters.pieces(separatedBy: ";") {
            let parameter = parameter.trimmingSpaces()
            guard parameter.count >= 2, parameter.first! | 0x20 == UInt8(ascii: "q"),
                parameter.dropFirst().first == UInt8(ascii: "=")
            else { continue }
            var sawDigit = false
            for byte in parameter.dropFirst(2) where (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                if byte != UInt8(ascii: "0") { return true }
                sawDigit = true
            }
            return !sawDigit
        }
        return true
    }
}

extension BidirectionalCollection where Element == UInt8 {
    /// The parts between `separator`s, as slices of this collection.
    fileprivate func pieces(separatedBy separator: Character) -> UnfoldSequence<SubSequence, Index> {
        let byte = separator.asciiValue!
        return sequence(state: startIndex) { start in
            guard start < endIndex else { return nil }
            let end = self[start...].firstIndex(of: byte) ?? endIndex
            defer { start = end == endIndex ? end : index(after: end) }
            return self[start..<end]
        }
    }

    /// Without the spaces and tabs at either end.
    fileprivate func trimmingSpaces() -> SubSequence {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        let first = firstIndex { !isSpace($0) } ?? endIndex
        let last = lastIndex { !isSpace($0) }.map { index(after: $0) } ?? first
        return self[first..<Swift.max(first, last)]
    }
}
