/// What the router needs of a FastCGI request, read from the params nginx sends.
///
/// The country comes only from `GEOIP_COUNTRY_CODE` and `GEOIP_COUNTRY_NAME`, which nginx sets with
/// `fastcgi_param`: client headers arrive as `HTTP_*` params, so no header can produce these names.
public struct Request: Sendable, Equatable {
    public var method: String
    /// The path of `REQUEST_URI`, without the query string.
    public var path: String
    public var remoteAddress: String?
    public var userAgent: [UInt8]
    public var countryCode: String?
    public var countryName: String?

    public init(
        method: String, uri: String, remoteAddress: String? = nil, userAgent: [UInt8] = [],
        countryCode: String? = nil, countryName: String? = nil
    ) {
        self.method = method
        self.path = uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(uri[..<$0]) } ?? uri
        self.remoteAddress = remoteAddress
        self.userAgent = userAgent
        self.countryCode = countryCode
        self.countryName = countryName
    }
}
