import Foundation

/// The country database nginx looked a request up in, as its site config tells the counter in two
/// params: `GEOIP_DATABASE_BUILD` (the file's `metadata build_epoch`, from libnginx-mod-http-geoip2)
/// and `GEOIP_DATABASE_TYPE` (what the file is; nginx cannot read the metadata's `database_type`, so
/// the site config states it beside the file's path).
///
/// The health route reports its age and answers 503 when it is stale, and the index page names its
/// source and month, with the link DB-IP's licence asks for. The legacy module passes no build time.
public struct GeoIPDatabase: Sendable, Equatable {
    /// When the file was built; `nil` when nginx passes none (the legacy module's fallback).
    public var build: Date?
    public var source: Source

    /// Whose data the file holds, from its `database_type`.
    public enum Source: Sendable, Equatable {
        /// `DBIP-Country-Lite`: DB-IP's IP to Country Lite, CC BY 4.0, which asks for a link to db-ip.com
        /// wherever its results are shown.
        case dbIP
        /// `GeoLite2-Country`: MaxMind's GeoLite2, whose licence asks for the same credit to MaxMind.
        case geoLite2
        /// `GeoIP-Legacy`: Debian's geoip-database, MaxMind's GeoLite Legacy data of 2019.
        case legacy
        /// Any other `database_type`, shown as it is.
        case other(String)
        /// No type was passed.
        case unknown

        public init(databaseType: String) {
            self.init(databaseType: databaseType.utf8)
        }

        /// The same, from the param's bytes as they are: known types are matched without a copy, since
        /// every request carries one.
        public init<Bytes: Collection<UInt8>>(databaseType bytes: Bytes) {
            if bytes.isEmpty {
                self = .unknown
            } else if bytes.elementsEqual("DBIP-Country-Lite".utf8) {
                self = .dbIP
            } else if bytes.elementsEqual("GeoLite2-Country".utf8) {
                self = .geoLite2
            } else if bytes.elementsEqual("GeoIP-Legacy".utf8) {
                self = .legacy
            } else {
                self = .other(String(decoding: bytes, as: UTF8.self))
            }
        }

        /// How the page credits the data.
        public var credit: String {
            switch self {
            case .dbIP: "IP Geolocation by DB-IP"
            case .geoLite2: "GeoLite2 data created by MaxMind"
            case .legacy: "GeoLite Legacy data created by MaxMind"
            case .other(let type): type
            case .unknown: "the site's GeoIP database"
            }
        }

        /// The credit's link: the plain `<a>` the licences ask for (no script, image or style, so the
        /// page's Content-Security-Policy stays as it is).
        public var link: String? {
            switch self {
            case .dbIP: "https://db-ip.com"
            case .geoLite2, .legacy: "https://www.maxmind.com"
            case .other, .unknown: nil
            }
        }
    }

    public init(build: Date?, source: Source) {
        self.build = build
        self.source = source
    }

    /// The build times taken as real: from 2000 to 2100. A country file says what it likes in its
    /// metadata, so a build time outside these is taken as absent rather than shown or computed with.
    public static let plausibleBuildEpochs: ClosedRange<Int64> = 946_684_800...4_102_444_800
    /// The longest `GEOIP_DATABASE_TYPE` taken as it is; a longer one is taken as unknown.
    public static let maxDatabaseTypeBytes = 64

    /// From the params' values; `nil` when nginx passes neither (an older site config) or both are empty.
    /// A build that is not a whole number of seconds within ``plausibleBuildEpochs`` is taken as absent.
    public init?(buildEpoch: String?, databaseType: String?) {
        self.init(buildEpochBytes: buildEpoch?.utf8, databaseTypeBytes: databaseType?.utf8)
    }

    /// The same, from the params' bytes as they are, without copies: it runs for every request.
    public init?<Bytes: Collection<UInt8>>(buildEpochBytes: Bytes?, databaseTypeBytes: Bytes?) {
        var epoch: Int64?
        if let digits = buildEpochBytes, !digits.isEmpty, digits.count <= 18 {
            epoch = digits.reduce(Int64(0)) { value, byte in
                guard let value, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                return value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            if let value = epoch, !Self.plausibleBuildEpochs.contains(value) { epoch = nil }
        }
        let source = databaseTypeBytes.flatMap { $0.count <= Self.maxDatabaseTypeBytes ? Source(databaseType: $0) : nil } ?? .unknown
        if epoch == nil && source == .unknown { return nil }
        self.init(build: epoch.map { Date(timeIntervalSince1970: Double($0)) }, source: source)
    }

    /// Whole days since the build, never below 0 (a build stamped ahead of this clock is new).
    public func ageDays(now: Date) -> Int? {
        build.map { max(0, Int(now.timeIntervalSince($0) / 86_400)) }
    }

    /// The build's month in words, `November 2026` (UTC): DB-IP publishes one file a month.
    public var month: String? {
        build.map { build in
            let day = UTCTimestamp.format(build)
            let month = Int(day.dropFirst(5).prefix(2)) ?? 1
            return "\(Self.months[month - 1]) \(day.prefix(4))"
        }
    }

    private static let months = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ]

    /// What the page's template sees as `country_data`: `credit`, and `link` and `month`, each absent
    /// when there is none.
    public var context: [String: Any] {
        var context: [String: Any] = ["credit": source.credit]
        if let link = source.link { context["link"] = link }
        if let month { context["month"] = month }
        return context
    }
}
