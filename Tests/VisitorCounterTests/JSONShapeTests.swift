import Foundation
import Testing

@testable import VisitorCounter

/// The JSON every route and export writes, byte for byte: clients and scripts read these shapes, so a
/// change to how the text is built must not change a byte of it.
struct JSONShapeTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func theHealthBodyKeepsItsShape() {
        var writer = VisitRecorder.Statistics()
        writer.bufferedVisits = 3
        writer.bufferedRows = 2
        writer.oldestBufferedVisit = now - 5
        writer.lastPass = now - 1
        writer.failedWrites = 4
        let report = HealthReport(
            statuses: [WorkerStatus(pid: 7, startedAt: now - 100, writer: writer), nil], threshold: .seconds(60),
            stats: VisitorStats(totalVisitors: 5, countries: ["US": 5], lastUpdated: nil, visitsWithoutRows: 1), now: now,
            geoipDatabase: GeoIPDatabase(build: now - 2 * 86_400, source: .other("A \"quoted\"\tsource")))
        #expect(
            report.healthResponse.body
                == #"{"status": "failing", "threshold_seconds": 60, "visits_without_rows_stored": 1, "#
                + #""workers_down": [1], "workers": [{"worker": 0, "pid": 7, "healthy": true, "#
                + #""started": "2027-01-15T07:58:20Z", "last_pass": "2027-01-15T07:59:59Z", "buffered_visits": 3, "#
                + #""buffered_rows": 2, "oldest_buffered_visit": "2027-01-15T07:59:55Z", "last_write": null, "#
                + #""consecutive_failures": 0, "failed_writes": 4, "visits_without_rows": 0, "spilled_visits": 0, "#
                + #""replayed_visits": 0}], "geoip_database": {"build": "2027-01-13T08:00:00Z", "age_days": 2, "#
                + #""source": "A \"quoted\"\tsource", "max_age_days": 45}, "#
                + #""reasons": ["worker 1 is down: it died and waits out its restart back-off, "#
                + #"or has not started yet"]}"#)
    }

    @Test func theDailyRouteAndItsErrorsKeepTheirShape() {
        let router = Router(
            pages: { RenderedPages(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), maxAge: 1) },
            daily: { from, _ in
                DailyHistory.Answer(days: [
                    DayStats(date: UTCTimestamp.dayText(from), visitors: 3, uniqueVisitors: 2, countries: ["GB": 1, "US": 2])
                ])
            })
        let daily = router.respond(to: Request(method: "GET", uri: "/api/sys/stats/daily?from=2026-11-01&to=2026-11-02"))
        #expect(daily.body == #"{"days": [{"date": "2026-11-01", "visitors": 3, "unique_visitors": 2, "countries": {"US": 2, "GB": 1}}]}"#)
        let bad = router.respond(to: Request(method: "GET", uri: "/api/sys/stats/daily?from=x\"\n&to=2026-11-02"))
        #expect(bad.body == #"{"status": 400, "message": "from is not a date as YYYY-MM-DD: x\"\n"}"#)
    }
}
