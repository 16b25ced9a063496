import Foundation
import Testing

@testable import VisitorCounter

struct HealthReportTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let stats = VisitorStats(totalVisitors: 5, countries: ["US": 3, "GB": 2], lastUpdated: nil, visitsWithoutRows: 1)

    func worker(pid: Int32, holdingSince oldest: Date? = nil, updated: TimeInterval = -1) -> WorkerStatus {
        var writer = VisitRecorder.Statistics()
        writer.oldestBufferedVisit = oldest
        writer.bufferedVisits = oldest == nil ? 0 : 10
        writer.writeLatency.record(.milliseconds(3))
        writer.writeLatency.record(.milliseconds(40))
        writer.writeLatency.record(.seconds(20))
        writer.lastPass = now + updated
        return WorkerStatus(pid: pid, startedAt: now - 100, writer: writer)
    }

    @Test func aWorkerHoldingAVisitPastTheThresholdFailsTheCheck() throws {
        let healthy = HealthReport(
            statuses: [worker(pid: 10), worker(pid: 11), worker(pid: 12, holdingSince: now - 30)], threshold: .seconds(60),
            stats: stats, now: now)
        #expect(healthy.healthResponse.status == 200)
        let json = try JSONSerialization.jsonObject(with: Data(healthy.healthResponse.body.utf8)) as? [String: Any]
        let workers = try #require(json?["workers"] as? [[String: Any]])
        #expect(workers.map { $0["worker"] as? Int } == [0, 1, 2])
        #expect(json?["workers_down"] as? [Int] == [])
        #expect(workers[2]["buffered_visits"] as? Int == 10)
        #expect(json?["visits_without_rows_stored"] as? Int == 1)

        let failing = HealthReport(
            statuses: [worker(pid: 10), worker(pid: 11, holdingSince: now - 61)], threshold: .seconds(60), stats: stats, now: now)
        #expect(failing.healthResponse.status == 503)
        #expect(failing.healthResponse.body.contains("\"status\": \"failing\""))
        #expect(failing.healthResponse.body.contains("\"pid\": 10, \"healthy\": true, \"started\": \"2027-01-15T07:58:20Z\""))
        #expect(failing.healthResponse.body.contains("\"pid\": 11, \"healthy\": false"))
    }

    @Test func aSlotWithoutALiveWorkerFailsTheCheckAndIsNamed() throws {
        // Worker 1 died: the supervisor cleared its slot, and its replacement has not started yet.
        let report = HealthReport(statuses: [worker(pid: 10), nil], threshold: .seconds(60), stats: stats, now: now)
        #expect(report.healthResponse.status == 503)
        let json = try JSONSerialization.jsonObject(with: Data(report.healthResponse.body.utf8)) as? [String: Any]
        #expect(json?["status"] as? String == "failing")
        #expect(json?["workers_down"] as? [Int] == [1])
    }

    @Test func aWorkerWhoseWriterIsStuckFailsTheCheck() {
        let stuck = HealthReport(statuses: [worker(pid: 10, updated: -90)], threshold: .seconds(60), stats: stats, now: now)
        #expect(stuck.healthResponse.status == 503)
    }

    @Test func metricsAreInPrometheusTextFormat() {
        let report = HealthReport(statuses: [worker(pid: 10), nil], threshold: .seconds(60), stats: stats, now: now)
        let text = report.metricsResponse.body
        #expect(text.contains("# TYPE visitor_counter_visits_total counter\nvisitor_counter_visits_total{country=\"US\"} 3\nvisitor_counter_visits_total{country=\"GB\"} 2\n"))
        #expect(text.contains("visitor_counter_database_visits_without_rows 1\n"))
        #expect(text.contains("visitor_counter_healthy{worker=\"0\"} 1\n"))
        #expect(!text.contains("worker=\"1\""))
        // Buckets are cumulative: 3 ms, 40 ms and 20 s.
        #expect(text.contains("visitor_counter_write_duration_seconds_bucket{worker=\"0\",le=\"0.0025\"} 0\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_bucket{worker=\"0\",le=\"0.005\"} 1\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_bucket{worker=\"0\",le=\"0.05\"} 2\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_bucket{worker=\"0\",le=\"10.0\"} 2\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"} 3\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_sum{worker=\"0\"} 20.043000\n"))
        #expect(text.contains("visitor_counter_write_duration_seconds_count{worker=\"0\"} 3\n"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "not `name{labels} value`: \(line)")
        }
    }

    @Test func theBoardCarriesStatusesBetweenMappings() throws {
        let board = try WorkerStatusBoard.create(workers: 3)
        defer { close(board.descriptor) }
        let other = try WorkerStatusBoard(descriptor: board.descriptor)
        let status = worker(pid: 42, holdingSince: now - 5)
        board.publish(status, at: 1)
        #expect(other.statuses() == [nil, status, nil])
        other.clear(1)
        #expect(board.statuses() == [nil, nil, nil])
    }
}

struct HealthRoutesTests {
    @Test func theRoutesAnswerFromTheReportAnd404WithoutOne() {
        let pages = RenderedPages(stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil), maxAge: 1)
        let report = HealthReport(
            statuses: [WorkerStatus(pid: 1, startedAt: Date())], threshold: .seconds(60),
            stats: VisitorStats(totalVisitors: 0, countries: [:], lastUpdated: nil))
        let router = Router(pages: { pages }, health: { report })
        func request(_ method: String, _ uri: String) -> Request {
            Request(method: method, uri: uri, remoteAddress: nil, userAgent: [], countryCode: nil, countryName: nil)
        }
        #expect(router.respond(to: request("GET", "/api/sys/health")).status == 200)
        #expect(router.respond(to: request("GET", "/api/sys/metrics?x=1")).header("Content-Type")?.hasPrefix("text/plain") == true)
        #expect(router.respond(to: request("HEAD", "/api/sys/health")).sendsBody == false)
        #expect(router.respond(to: request("POST", "/api/sys/metrics")).status == 405)
        let without = Router(pages: { pages })
        #expect(without.respond(to: request("GET", "/api/sys/health")).status == 404)
    }
}
