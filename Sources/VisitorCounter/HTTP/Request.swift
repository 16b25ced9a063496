import Foundation

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

    public init(
        method: String, uri: String, remoteAddress: String? = nil, userAgent: [UInt8] = [],
        countryCode: String? = nil, countryName: String? = nil, acceptsGzip: Bool = false
    ) {
        self.acceptsGzip = acceptsGzip
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
        var qualities: [String: Double] = [:]
        for item in acceptEncoding.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let coding = parts.first, coding == "gzip" || coding == "*" else { continue }
            qualities[coding] = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
        }
        return (qualities["gzip"] ?? qualities["*"] ?? 0) > 0
    }
}
