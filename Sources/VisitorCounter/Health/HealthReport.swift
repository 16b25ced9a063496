import Foundation

/// The health and metrics routes' answers, from every worker's published ``WorkerStatus`` and the
/// totals in the stats cache.
///
/// The report fails while a worker slot has no live worker (`workers_down`). A worker is unhealthy when it holds a visit older than `threshold` (its writes have not got through
/// for that long) or when its writer thread has not gone round its loop for that long (it is stuck:
/// it goes round at least every flush interval, which must be shorter than the threshold). Both
/// routes answer from memory and never touch the database.
///
/// The country database is stale when it was built more than `geoipMaxAge` ago: countries then drift
/// from the truth as address blocks change hands, and the updater has stopped working.
public struct HealthReport: Sendable {
    public var statuses: [WorkerStatus?]
    public var threshold: Duration
    public var stats: VisitorStats
    public var now: Date
    /// The country database nginx looked the health request up in; `nil` when nginx passes none.
    public var geoipDatabase: GeoIPDatabase?
    /// Older than this, the country database makes health answer 503; `nil`: never.
    public var geoipMaxAge: Duration?

    /// DB-IP and MaxMind publish monthly: 45 days is a month's file plus two weeks of failed updates.
    public static let defaultGeoIPMaxAge = Duration.seconds(45 * 86_400)

    public init(
        statuses: [WorkerStatus?], threshold: Duration, stats: VisitorStats, now: Date = Date(),
        geoipDatabase: GeoIPDatabase? = nil, geoipMaxAge: Duration? = HealthReport.defaultGeoIPMaxAge
    ) {
        self.statuses = statuses
        self.threshold = threshold
        self.stats = stats
        self.now = now
        self.geoipDatabase = geoipDatabase
        self.geoipMaxAge = geoipMaxAge
    }

    public static let healthPath = "/api/sys/health"
    public static let metricsPath = "/api/sys/metrics"

    private var thresholdSeconds: Double { Double(threshold.components.seconds) }

    public func isHealthy(_ status: WorkerStatus) -> Bool {
        if let oldest = status.writer.oldestBufferedVisit, now.timeIntervalSince(oldest) > thresholdSeconds { return false }
        if let pass = status.writer.lastPass, now.timeIntervalSince(pass) > thresholdSeconds { return false }
        return true
    }

    private var workers: [(index: Int, status: WorkerStatus)] {
        statuses.enumerated().compactMap { index, status in status.map { (index, $0) } }
    }

    /// Slots without a live worker: it died and waits out its restart back-off, or has not started yet.
    /// The supervisor clears a dead worker's slot; its replacement fills it when its writer starts.
    public var workersDown: [Int] { statuses.indices.filter { statuses[$0] == nil } }

    /// Every worker is up and keeps up. The country database's age is checked apart (``geoipProblem``);
    /// all are in ``reasons``.
    public var isHealthy: Bool { workersDown.isEmpty && workers.allSatisfy { isHealthy($0.status) } }

    /// Why the country database fails the check, or `nil` when it does not (or there is no build time).
    public var geoipProblem: String? {
        guard let maxAge = geoipMaxAge, let build = geoipDatabase?.build,
            now.timeIntervalSince(build) > Double(maxAge.components.seconds)
        else { return nil }
        let days = maxAge.components.seconds / 86_400
        return "the GeoIP country database was built \(UTCTimestamp.format(build)), "
            + "\(geoipDatabase?.ageDays(now: now) ?? 0) days ago, more than \(days) days "
            + "(--geoip-max-age-days): run systemctl start visitor-counter-geoip-update and see its log "
            + "(journalctl -u visitor-counter-geoip-update)"
    }

    /// What makes health answer 503, in words; empty when it answers 200.
    public var reasons: [String] {
        workersDown.map { "worker \($0) is down: it died and waits out its restart back-off, or has not started yet" }
            + workers.compactMap { index, status in
                isHealthy(status) ? nil : "worker \(index) (pid \(status.pid)) holds a visit unwritten, or its writer has not gone round its loop, for over \(threshold.components.seconds) s"
            } + (geoipProblem.map { [$0] } ?? [])
    }

    /// `{"build": "…", "age_days": N, "source": "…", "max_age_days": N}`, or `null` when nginx passes no
    /// build time.
    private var geoipJSON: JSON {
        guard let database = geoipDatabase, let build = database.build else { return .null }
        return [
            "build": .timestamp(build), "age_days": .int(database.ageDays(now: now) ?? 0),
            "source": .string(database.source.credit),
            "max_age_days": geoipMaxAge.map { .int(Int($0.components.seconds / 86_400)) } ?? .null,
        ]
    }

    /// `200` with every worker's figures, or `503` with the same body when a worker is unhealthy.
    public var healthResponse: Response {
        let workers: [JSON] = self.workers.map { index, status in
            let writer = status.writer
            return [
                "worker": .int(index), "pid": .int(Int(status.pid)), "healthy": .bool(isHealthy(status)),
                "started": .timestamp(status.startedAt), "last_pass": .timestamp(writer.lastPass),
                "buffered_visits": .int(writer.bufferedVisits), "buffered_rows": .int(writer.bufferedRows),
                "oldest_buffered_visit": .timestamp(writer.oldestBufferedVisit), "last_write": .timestamp(writer.lastWrite),
                "consecutive_failures": .int(writer.consecutiveFailures), "failed_writes": .int(writer.failedWrites),
                "visits_without_rows": .int(writer.visitsWithoutRows), "spilled_visits": .int(writer.spilledVisits),
                "replayed_visits": .int(writer.replayedVisits),
            ]
        }
        let reasons = self.reasons
        let healthy = reasons.isEmpty
        let body: JSON = [
            "status": .string(healthy ? "ok" : "failing"), "threshold_seconds": .int(Int(threshold.components.seconds)),
            "visits_without_rows_stored": .int(stats.visitsWithoutRows), "workers_down": .array(workersDown.map { .int($0) }),
            "workers": .array(workers), "geoip_database": geoipJSON, "reasons": .array(reasons.map { .string($0) }),
        ]
        return .json(body, status: healthy ? 200 : 503)
    }

    /// The same figures in Prometheus' text format.
    public var metricsResponse: Response {
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples { text += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        family(
            "visitor_counter_visits_total", "counter", "Visits in the database, by country (XX: unknown).",
            stats.countriesByCount.map { ("{country=\(JSON.quoted($0.code))}", "\($0.visitors)") })
        family(
            "visitor_counter_database_visits_without_rows", "gauge",
            "Visits in the database's totals that have no row in visitors (counted while a buffer was at its bound).",
            [("", "\(stats.visitsWithoutRows)")])
        family(
            "visitor_counter_ignored_total", "counter",
            "Requests to / of the site's owner (--ignore-ips, the opt-out cookie) in the database, counted in no other figure.",
            [("", "\(stats.ignored)")])
        if let build = geoipDatabase?.build {
            family(
                "visitor_counter_geoip_database_build_timestamp_seconds", "gauge",
                "Unix time the GeoIP country database nginx reads was built (its metadata build_epoch).",
                [("", "\(Int64(build.timeIntervalSince1970))")])
        }

        let workers = self.workers
        func perWorker(_ name: String, _ type: String, _ help: String, _ value: (WorkerStatus) -> String) {
            family(name, type, help, workers.map { ("{worker=\"\($0.index)\"}", value($0.status)) })
        }
        perWorker("visitor_counter_healthy", "gauge", "1 when the worker's writes keep up, 0 when it fails the health check.") {
            isHealthy($0) ? "1" : "0"
        }
        perWorker("visitor_counter_buffered_visits", "gauge", "Visits answered and not yet written.") { "\($0.writer.bufferedVisits)" }
        perWorker("visitor_counter_buffered_rows", "gauge", "Visit rows held in memory (at most --buffer-limit).") {
            "\($0.writer.bufferedRows)"
        }
        perWorker("visitor_counter_oldest_buffered_visit_age_seconds", "gauge", "Age of the oldest visit not yet written; 0 when none.") {
            $0.writer.oldestBufferedVisit.map { String(format: "%.3f", max(0, now.timeIntervalSince($0))) } ?? "0"
        }
        perWorker("visitor_counter_last_write_timestamp_seconds", "gauge", "Unix time of the last successful write; 0 before the first.") {
            $0.writer.lastWrite.map { String(format: "%.3f", $0.timeIntervalSince1970) } ?? "0"
        }
        perWorker("visitor_counter_visits_recorded_total", "counter", "Requests to / this worker answered, bots' included.") { "\($0.writer.visitsRecorded)" }
        perWorker("visitor_counter_visits_written_total", "counter", "Requests to / this worker wrote, bots' included.") { "\($0.writer.visitsWritten)" }
        perWorker("visitor_counter_write_failures_total", "counter", "Failed writes (and failed spill replays).") {
            "\($0.writer.failedWrites)"
        }
        perWorker("visitor_counter_consecutive_write_failures", "gauge", "Failed writes since the last one that worked.") {
            "\($0.writer.consecutiveFailures)"
        }
        perWorker("visitor_counter_visits_without_rows_total", "counter", "Visits counted without keeping their row.") {
            "\($0.writer.visitsWithoutRows)"
        }
        perWorker("visitor_counter_spilled_visits_total", "counter", "Visits written to a spill file at a stop.") {
            "\($0.writer.spilledVisits)"
        }
        perWorker("visitor_counter_replayed_visits_total", "counter", "Visits replayed from spill files.") {
            "\($0.writer.replayedVisits)"
        }

        let name = "visitor_counter_write_duration_seconds"
        text += "# HELP \(name) How long successful batch writes took.\n# TYPE \(name) histogram\n"
        for (index, status) in workers {
            let histogram = status.writer.writeLatency
            var cumulative = 0
            for (bound, count) in zip(LatencyHistogram.bounds.map { "\($0)" } + ["+Inf"], histogram.counts) {
                cumulative += count
                text += "\(name)_bucket{worker=\"\(index)\",le=\"\(bound)\"} \(cumulative)\n"
            }
            text += "\(name)_sum{worker=\"\(index)\"} \(String(format: "%.6f", Double(histogram.sumMicroseconds) / 1e6))\n"
            text += "\(name)_count{worker=\"\(index)\"} \(histogram.count)\n"
        }
        return .text(text, contentType: "text/plain; version=0.0.4; charset=utf-8")
    }
}
