import Foundation
import GRDB
import Testing

@testable import VisitorCounter

/// The shipped site's GeoIP2 lookup, through a real nginx with both GeoIP modules loaded and a test
/// database made by `scripts/make-test-geoip.pl`: countries over IPv4 and IPv6, the database's age in
/// health and metrics, and its credit on the page.
@Suite(.serialized, .tags(.nginx))
struct GeoIPTests {
    /// A stack on a test database built `builtDaysAgo` days ago; `directory` keeps the file alive.
    func stack(builtDaysAgo: Int, in directory: TemporaryDirectory, extraArguments: [String] = []) async throws -> LocalStack {
        let database = directory.path("country.mmdb")
        try makeTestGeoIPDatabase(at: database, builtDaysAgo: builtDaysAgo)
        let stack = try await LocalStack(.init(workers: 2, extraArguments: extraArguments, geoip: database))
        let configuration = try String(contentsOfFile: stack.directory.path("nginx.conf"), encoding: .utf8)
        #expect(configuration.contains("ngx_http_geoip_module.so") && configuration.contains("ngx_http_geoip2_module.so"))
        return stack
    }

    @Test func visitsOverIPv4AndIPv6CountUnderTheirCountries() async throws {
        let directory = try TemporaryDirectory()
        let stack = try await stack(builtDaysAgo: 3, in: directory)
        // The test database maps 127.0.0.0/8 to FR and ::1 to JP; X-Forwarded-For (trusted from both
        // loopbacks) tries the other networks.
        let visits: [(ipv6: Bool, forwardedFor: String?, ip: String, code: String)] = [
            (false, nil, "127.0.0.1", "FR"),
            (true, nil, "::1", "JP"),
            (true, "2001:db8:1::7", "2001:db8:1::7", "GB"),
            (false, "2001:db8:2::9", "2001:db8:2::9", "US"),
            (true, "81.2.69.142", "81.2.69.142", "GB"),
            (false, "192.0.2.1", "192.0.2.1", "XX"),
        ]
        for visit in visits {
            let headers = visit.forwardedFor.map { ["X-Forwarded-For": $0] } ?? [:]
            #expect(try stack.request("GET", "/", headers: headers, ipv6: visit.ipv6).status == 200)
        }
        #expect(stack.stopCounter() == 0)
        let store = try SQLiteStore(path: stack.databasePath)
        #expect(try store.stats().countries == ["FR": 1, "JP": 1, "GB": 2, "US": 1, "XX": 1])
        let stored = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT ip, country_code, country FROM visitors").map {
                "\($0["ip"] as String? ?? "-") \($0["country_code"] as String) \($0["country"] as String)"
            }
        }
        for visit in visits {
            #expect(stored.contains { $0.hasPrefix("\(visit.ip) \(visit.code) ") }, "\(visit.ip) not as \(visit.code): \(stored)")
        }
        #expect(stored.contains("::1 JP Japan"))
    }

    @Test func healthAndMetricsShowTheDatabasesBuildAndAge() async throws {
        let directory = try TemporaryDirectory()
        let stack = try await stack(builtDaysAgo: 3, in: directory)
        let health = try stack.health()
        #expect(health.status == 200)
        let geoip = try #require(health.json["geoip_database"] as? [String: Any], "\(health.json)")
        let build = try #require((geoip["build"] as? String).flatMap(UTCTimestamp.parse))
        #expect(abs(build.timeIntervalSinceNow + 3 * 86_400) < 600)
        #expect(geoip["age_days"] as? Int == 3)
        #expect(geoip["max_age_days"] as? Int == 45)
        #expect(geoip["source"] as? String == "IP Geolocation by DB-IP")
        // Over IPv6 too: the health location allows ::1.
        #expect(try stack.request("GET", "/api/sys/health", ipv6: true).status == 200)

        let metrics = try stack.request("GET", "/api/sys/metrics").body
        #expect(metrics.contains("visitor_counter_geoip_database_build_timestamp_seconds \(Int(build.timeIntervalSince1970))\n"))
        #expect(stack.stopCounter() == 0)
    }

    @Test func theFooterCreditsDBIPWithAPlainLinkAndTheSamePolicy() async throws {
        let directory = try TemporaryDirectory()
        let stack = try await stack(builtDaysAgo: 3, in: directory)
        let month = try #require(GeoIPDatabase(build: Date() - 3 * 86_400, source: .dbIP).month)
        // The first visit already names the data: the worker renders its page again when a request
        // brings a database it has not named.
        let page = try stack.request("GET", "/")
        #expect(page.body.contains(
            "<p id=\"country-data\">Countries: <a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>, \(month) edition.</p>"),
            "\(page.body.suffix(3000))")
        #expect(page.headers["content-security-policy"] == IndexTemplate.standard.contentSecurityPolicy)
        #expect(stack.stopCounter() == 0)
    }

    @Test func aDatabaseSixtyDaysOldMakesHealth503WithTheReason() async throws {
        let directory = try TemporaryDirectory()
        let stack = try await stack(builtDaysAgo: 60, in: directory)
        let health = try stack.health()
        #expect(health.status == 503)
        #expect(health.json["status"] as? String == "failing")
        #expect((health.json["geoip_database"] as? [String: Any])?["age_days"] as? Int == 60)
        let reasons = try #require(health.json["reasons"] as? [String])
        #expect(reasons.count == 1)
        #expect(reasons.first?.contains("60 days ago, more than 45 days") == true, "\(reasons)")
        #expect(reasons.first?.contains("visitor-counter-geoip-update") == true)
        #expect(stack.stopCounter() == 0)

        let patient = try await self.stack(builtDaysAgo: 60, in: directory, extraArguments: ["--geoip-max-age-days", "90"])
        #expect(try patient.health().status == 200)
        #expect(patient.stopCounter() == 0)
    }

    @Test func theLegacyFallbackPassesNoBuildTime() async throws {
        let stack = try await LocalStack(workers: 1)
        let health = try stack.health()
        #expect(health.status == 200)
        #expect(health.json["geoip_database"] is NSNull)
        #expect(try stack.request("GET", "/").body.contains(
            "Countries: <a href=\"https://www.maxmind.com\">GeoLite Legacy data created by MaxMind</a>."))
        #expect(stack.stopCounter() == 0)
    }
}
