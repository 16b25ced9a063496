import Foundation
import GRDB
import Synchronization
import Testing

@testable import VisitorCounter

/// A worker's memory under the one route a client can vary freely: `/api/sys/stats/daily`, through the real
/// nginx, against a database with a year of 150 countries a day.
@Suite(.serialized, .tags(.nginx))
struct DailyHistoryMemoryTests {
    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `RssAnon`).
    private func status(_ pid: Int32, _ field: String) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("\(field):") }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { throw TestFailure("no \(field) in /proc/\(pid)/status") }
        return kib
    }

    /// The days from `first` to `last` with `countries` countries each, straight into the rollup.
    private func fillDailyHistory(_ path: String, first: Int, last: Int, countries: Int) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)  // the counter's writer may be in a transaction
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.write { db in
            let day = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO daily_visits (date, visitors, unique_visitors) VALUES (?, ?, ?)")
            let country = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO daily_countries (date, country_code, visitors) VALUES (?, ?, ?)")
            let codes = (0..<countries).map { index in
                let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".unicodeScalars)
                return String(letters[index / 26]) + String(letters[index % 26])
            }
            for number in first...last {
                let date = UTCTimestamp.dayText(number)
                try day.execute(arguments: [date, 100_000 + number, 50_000])
                for (index, code) in codes.enumerated() { try country.execute(arguments: [date, code, 1000 + index + number % 97]) }
            }
        }
    }

    @Test func aThousandDistinctRangesOverAYearOf150CountriesGrowAWorkerByLessThan64MiB() async throws {
        // The answers are kept 60 s: every range is still in its period when the last one is asked, the
        // case where a cache bounded by count alone held them all.
        let stack = try await LocalStack(workers: 1, threads: 8, extraArguments: ["--stats-cache", "60"])
        let today = UTCTimestamp.day(Date())
        let (first, last) = (today - 365, today)
        try fillDailyHistory(stack.databasePath, first: first, last: last, countries: 150)
        let worker = try #require(stack.workerPIDs().first)

        @Sendable func ask(_ from: Int, _ to: Int) throws -> LocalStack.HTTPResponse {
            let path = "/api/sys/stats/daily?from=\(UTCTimestamp.dayText(from))&to=\(UTCTimestamp.dayText(to))"
            // A 503 says a quarter of the threads are reading already: asked again, as a client would.
            while true {
                let response = try stack.request("GET", path, headers: ["Accept-Encoding": "gzip"])
                if response.status != 503 { return response }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        // One full year first, so that what any answer needs once (the code's pages, SQLite's caches) is
        // in the baseline.
        let year = try ask(first, last)
        #expect(year.status == 200)
        #expect(year.headers["content-encoding"] == "gzip")
        let days = try JSONSerialization.jsonObject(with: Data(try gunzip(year.bodyBytes).utf8)) as? [String: Any]
        let firstDay = try #require((days?["days"] as? [[String: Any]])?.first)
        #expect((firstDay["countries"] as? [String: Int])?.count == 150)
        let before = (rss: try status(worker, "VmRSS"), anonymous: try status(worker, "RssAnon"))

        // 1,000 distinct ranges within the year, from 4 clients at once: of the 67,161 ranges of 1 to 366
        // days there, one in 66, so that they spread over every length and start (a full year included).
        let all = (0...365).flatMap { length in (first...(last - length)).map { ($0, $0 + length) } }
        let ranges = Array(all.enumerated().filter { $0.offset % 66 == 65 }.map(\.element).prefix(999)) + [(first, last - 1)]
        #expect(Set(ranges.map { "\($0.0)-\($0.1)" }).count == 1000)
        let next = Mutex(0)
        let failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for _ in 0..<4 {
            done.enter()
            Thread.start(named: "daily-ranges") {
                defer { done.leave() }
                while let (from, to) = next.withLock({ index -> (Int, Int)? in
                    defer { index += 1 }
                    return index < ranges.count ? ranges[index] : nil
                }) {
                    do {
                        let response = try ask(from, to)
                        if response.status != 200 || response.isCutOff {
                            failures.withLock { $0.append("\(from)-\(to): \(response.status)") }
                        }
                    } catch {
                        failures.withLock { $0.append("\(from)-\(to): \(error)") }
                    }
                }
            }
        }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
        let after = (rss: try status(worker, "VmRSS"), anonymous: try status(worker, "RssAnon"))
        let growth = (after.rss - before.rss) / 1024
        let summary = "VmRSS \(before.rss / 1024) -> \(after.rss / 1024) MiB, RssAnon \(before.anonymous / 1024) -> \(after.anonymous / 1024) MiB"
        print("daily history memory: \(summary)")
        #expect(stack.workerPIDs() == [worker], "the worker was replaced: \(summary)")
        #expect(growth < 64, "\(summary)")
        #expect(stack.stopCounter() == 0)
    }
}
