import Foundation

/// One recorded page view, already normalised: every field is safe to store and to show.
///
/// Build visits with ``init(ip:userAgent:countryCode:countryName:time:)``, which cleans what nginx
/// hands over; the memberwise values are then trusted as they are.
public struct Visit: Sendable, Equatable {
    /// The client address in canonical form, or `nil` when what arrived was not an IPv4 or IPv6 address.
    public var ip: String?
    /// The user agent, valid UTF-8 without control characters, at most ``maxUserAgentBytes`` bytes.
    public var userAgent: String
    /// The country's English name, or `Unknown`.
    public var country: String
    /// An ISO 3166-1 alpha-2 code in upper case, or ``unknownCountryCode``.
    public var countryCode: String
    /// When the visit was answered.
    public var time: Date
    /// The address already in the form `--store-ip` stores, with the visitor's hash for the day, for a
    /// visit read back from a ``VisitJournal`` that could not keep the full address; `nil` otherwise.
    public var sealed: Sealed?
    /// A request of the site's owner (`--ignore-ips`, or the opt-out cookie): answered as usual, and
    /// counted in `ignored` only, never as a visit or a bot (``VisitBuffer/kind(of:)``).
    public var ignored = false
    /// The page's path as ``normalisedPath(_:)`` makes it: `/` for the counter's own page (`GET /`) and
    /// for visits recorded before pages were counted.
    public var path = Visit.indexPath
    /// The host of the site the visitor came from (``referrerHost(_:siteHost:)``), `nil` when none.
    public var referrer: String?

    /// What a journal keeps of an address when `--store-ip` is not `full`.
    public struct Sealed: Sendable, Equatable {
        /// The value for `visitors.ip`.
        public var storedIP: String?
        /// The visitor's hash (address and user agent under the day's key); `nil` when the day's key
        /// was not known when the visit was answered: the visit then counts, but not as a unique visitor.
        public var visitorHash: UInt64?

        public init(storedIP: String?, visitorHash: UInt64?) {
            self.storedIP = storedIP
            self.visitorHash = visitorHash
        }
    }

    /// The code stored for a visit whose country nginx could not tell.
    public static let unknownCountryCode = "XX"
    /// The name stored for a visit whose country has no known name.
    public static let unknownCountryName = "Unknown"
    /// Longer user agents are cut, at a character boundary, to this many UTF-8 bytes.
    public static let maxUserAgentBytes = 512

    /// Takes the values as they are; use ``init(ip:userAgent:countryCode:countryName:time:)`` for raw input.
    public init(trustedIP ip: String?, userAgent: String, country: String, countryCode: String, time: Date) {
        self.ip = ip
        self.userAgent = userAgent
        self.country = country
        self.countryCode = countryCode
        self.time = time
    }

    /// Normalises raw request values into a visit.
    ///
    /// - Parameters:
    ///   - ip: the client address as nginx saw it (`REMOTE_ADDR`).
    ///   - userAgent: the raw bytes of the `User-Agent` header, which need not be valid UTF-8.
    ///   - countryCode: the GeoIP country code, if nginx found one.
    ///   - countryName: the GeoIP country name, if nginx found one.
    ///   - time: when the visit was answered.
    public init<UserAgent: Collection<UInt8>>(
        ip: String?,
        userAgent: UserAgent,
        countryCode: String?,
        countryName: String?,
        time: Date
    ) {
        let code = Visit.normalisedCountryCode(countryCode)
        self.init(
            trustedIP: ip.flatMap(Visit.canonicalIP),
            userAgent: Visit.normalisedUserAgent(userAgent),
            country: Visit.countryName(code: code, geoIPName: countryName),
            countryCode: code,
            time: time
        )
    }
}
