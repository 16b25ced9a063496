import Foundation
import Synchronization
import Testing

@testable import VisitorCounter

/// The country database's params, its age in health and metrics, and its credit on the page, without
/// nginx (``GeoIPTests`` does the same through it).
struct GeoIPDatabaseTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
    let stats = VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil)

    func database(daysOld: Double, type: String = "DBIP-Country-Lite") -> GeoIPDatabase {
        GeoIPDatabase(buildEpoch: "\(Int(now.timeIntervalSince1970 - daysOld * 86_400))", databaseType: type)!
    }

    @Test func theParamsAreReadAsTheSiteConfigPassesThem() {
        #expect(GeoIPDatabase(buildEpoch: nil, databaseType: nil) == nil)
        #expect(GeoIPDatabase(buildEpoch: "", databaseType: "") == nil)
        let legacy = GeoIPDatabase(buildEpoch: "", databaseType: "GeoIP-Legacy")
        #expect(legacy == GeoIPDatabase(build: nil, source: .legacy))
        #expect(GeoIPDatabase(buildEpoch: "1790000000", databaseType: "GeoLite2-Country")?.source == .geoLite2)
        #expect(GeoIPDatabase(buildEpoch: "1790000000", databaseType: "GeoLite2-Country")?.build == Date(timeIntervalSince1970: 1_790_000_000))
        #expect(GeoIPDatabase(buildEpoch: "12abc", databaseType: "Acme-Country")
            == GeoIPDatabase(build: nil, source: .other("Acme-Country")))
        #expect(database(daysOld: 0).month == "January 2027")
        #expect(database(daysOld: 10.5).ageDays(now: now) == 10)
        #expect(database(daysOld: -1).ageDays(now: now) == 0)
    }

    /// A build time any file or peer can write: outside 2000 to 2100 it is no build time at all, and
    /// the health report, the page's month and every timestamp still work.
    @Test(arguments: ["10000000000000000", "999999999999999999", "946684799", "4102444801", "1"])
    func aBuildTimeOutOfRangeIsTakenAsAbsent(epoch: String) throws {
        let database = try #require(GeoIPDatabase(buildEpoch: epoch, databaseType: "DBIP-Country-Lite"))
        #expect(database.build == nil)
        #expect(database.month == nil)
        let report = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now, geoipDatabase: database)
        #expect(report.healthResponse.status == 200)
        #expect(GeoIPDatabase(buildEpoch: "946684800", databaseType: nil)?.build == Date(timeIntervalSince1970: 946_684_800))
    }

    @Test func aLongDatabaseTypeIsTakenAsUnknown() {
        let long = String(repeating: "X", count: GeoIPDatabase.maxDatabaseTypeBytes + 1)
        #expect(GeoIPDatabase(buildEpoch: "1790000000", databaseType: long)?.source == .unknown)
        #expect(GeoIPDatabase(buildEpoch: "", databaseType: long) == nil)
    }

    /// Whatever a date is, formatting it and taking its day and minute never trap.
    @Test(arguments: [1e17, -1e17, Double.infinity, -Double.infinity, Double.nan, 253_402_300_800])
    func anyTimeFormatsWithoutTrapping(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let text = UTCTimestamp.format(date, milliseconds: true)
        #expect(text.utf8.count == 24, "\(text)")
        _ = UTCTimestamp.day(date)
        _ = UTCTimestamp.minute(date)
        if seconds > 0 && !seconds.isNaN { #expect(text == "9999-12-31T23:59:59.000Z") }
    }

    @Test func healthShowsTheBuildAndAgeAnd503sPastTheLimitWithTheReason() throws {
        let fresh = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now, geoipDatabase: database(daysOld: 44.9))
        #expect(fresh.healthResponse.status == 200)
        let json = try JSONSerialization.jsonObject(with: Data(fresh.healthResponse.body.utf8)) as? [String: Any]
        let geoip = try #require(json?["geoip_database"] as? [String: Any])
        #expect(geoip["build"] as? String == "2026-12-01T10:24:00Z")
        #expect(geoip["age_days"] as? Int == 44)
        #expect(json?["reasons"] as? [String] == [])

        let stale = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now, geoipDatabase: database(daysOld: 45.1))
        #expect(stale.healthResponse.status == 503)
        #expect(stale.reasons == [
            "the GeoIP country database was built 2026-12-01T05:36:00Z, 45 days ago, more than 45 days "
                + "(--geoip-max-age-days): run systemctl start visitor-counter-geoip-update and see its log "
                + "(journalctl -u visitor-counter-geoip-update)"
        ])

        var never = stale
        never.geoipMaxAge = nil
        #expect(never.healthResponse.status == 200)
        var withoutBuild = stale
        withoutBuild.geoipDatabase = GeoIPDatabase(build: nil, source: .legacy)
        #expect(withoutBuild.healthResponse.status == 200)
        #expect(withoutBuild.healthResponse.body.contains("\"geoip_database\": null"))
    }

    @Test func metricsCarryTheBuildTimeAsAGauge() {
        let report = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now, geoipDatabase: database(daysOld: 2))
        #expect(report.metricsResponse.body.contains(
            "# TYPE visitor_counter_geoip_database_build_timestamp_seconds gauge\n"
                + "visitor_counter_geoip_database_build_timestamp_seconds 1799827200\n"))
        let without = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now)
        #expect(!without.metricsResponse.body.contains("geoip"))
    }

    /// The health route reports the database of the health request itself.
    @Test func theHealthRouteTakesTheRequestsOwnParams() throws {
        let pages = RenderedPages(stats: stats, maxAge: 1)
        let report = HealthReport(statuses: [], threshold: .seconds(60), stats: stats, now: now)
        let router = Router(pages: { pages }, health: { report })
        let old = database(daysOld: 60)
        #expect(router.respond(to: Request(method: "GET", uri: "/api/sys/health", geoipDatabase: old)).status == 503)
        #expect(router.respond(to: Request(method: "GET", uri: "/api/sys/health")).status == 200)
    }

    @Test(arguments: [
        ("DBIP-Country-Lite", "Countries: <a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>, January 2027 edition."),
        ("GeoLite2-Country", "Countries: <a href=\"https://www.maxmind.com\">GeoLite2 data created by MaxMind</a>, January 2027 edition."),
        ("Acme<Country>", "Countries: Acme&lt;Country&gt;, January 2027 edition."),
    ])
    func theFooterCreditsTheSourceAndMonth(type: String, footer: String) {
        var dashboard = Dashboard(stats: stats, days: [], refreshSeconds: 10, now: now)
        let plain = RenderedPages(dashboard: dashboard, maxAge: 1)
        #expect(!plain.index.body.contains("country-data"))
        dashboard.geoipDatabase = database(daysOld: 0, type: type)
        let credited = RenderedPages(dashboard: dashboard, maxAge: 1)
        #expect(credited.index.body.contains("<p id=\"country-data\">\(footer)</p>"), "\(credited.index.body.suffix(2500))")
        // A plain link: the policy, worked out from the template's style and script, stays the same.
        #expect(credited.index.header("Content-Security-Policy") == plain.index.header("Content-Security-Policy"))
    }

    /// A newer database re-renders the page at once; an older one (nginx's old workers during a
    /// reload) does not take its place.
    @Test func theStatsCacheNamesTheNewestDatabaseAtOnce() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path("visitors.sqlite"))
        let cache = try StatsCache(store: store, period: .seconds(60), logger: quietLogger)
        #expect(!cache.pages.index.body.contains("country-data"))
        let november = GeoIPDatabase(buildEpoch: "1793491200", databaseType: "DBIP-Country-Lite")!  // 2026-11-01
        let october = GeoIPDatabase(buildEpoch: "1790812800", databaseType: "DBIP-Country-Lite")!  // 2026-10-01
        cache.use(november)
        #expect(cache.pages.index.body.contains("November 2026 edition"))
        cache.use(october)
        #expect(cache.pages.index.body.contains("November 2026 edition"))
        cache.refresh()
        #expect(cache.pages.index.body.contains("November 2026 edition"))
    }
}
