import ArgumentParser
import Foundation
import Logging
import VisitorCounter

/// Records made-up visits through the real buffer and writer: the multi-process tests and a quick manual
/// check of a database use it. Hidden from `--help`: it is not for site owners.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Record made-up visits into a database through the buffer and writer (for tests).",
        shouldDisplay: false
    )

    @Option(help: "The SQLite database to write.")
    var database: String

    @Option(help: "How many visits to record.")
    var visits: Int

    @Option(help: "Visits per batch.")
    var batchSize: Int = 50

    @Option(help: "Request threads recording at once.")
    var threads: Int = 4

    @Option(help: "Seconds after which a part-filled batch is written.")
    var flushInterval: Double = 0.2

    @Option(help: "Country codes, comma-separated, given to the visits in turn.")
    var countries: String = "US,GB,DE,FR,JP,BR,XX"

    @Option(help: "Pages' paths, comma-separated, given to the visits in turn.")
    var pages: String = "/"

    @Option(help: "Referrers' hosts, comma-separated, given to the visits in turn; an empty one is none.")
    var referrers: String = ""

    @Option(help: "Spread the visits over this many days up to now, busier on weekdays and lately; 0 dates them all now.")
    var spreadDays: Int = 0

    func validate() throws {
        guard visits >= 0, batchSize > 0, threads > 0, flushInterval > 0, spreadDays >= 0 else {
            throw ValidationError(
                "--visits and --spread-days must be 0 or more, --batch-size, --threads and --flush-interval more than 0")
        }
    }

    func run() throws {
        bootstrapLogging()
        let codes = countries.split(separator: ",").map(String.init)
        let paths = pages.split(separator: ",").map { Visit.normalisedPath(Array($0.utf8)) }
        let hosts = referrers.split(separator: ",", omittingEmptySubsequences: false)
            .map { Visit.referrerHost(Array("https://\($0)/".utf8), siteHost: []) }
        let now = Date()
        let days = SpreadDays(days: spreadDays, now: now)
        let store = try SQLiteStore(path: database)
        let recorder = VisitRecorder(
            store: store,
            configuration: .init(
                batchSize: batchSize, flushInterval: .milliseconds(Int64(flushInterval * 1000)),
                bufferLimit: max(batchSize, VisitRecorder.Configuration.defaultBufferLimit)),
            logger: Logger(label: "visitor-counter.simulate"))
        recorder.start()

        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in stride(from: thread, to: visits, by: threads) {
                let code = codes[index % codes.count]
                var visit = Visit(
                    ip: "192.0.2.\(index % 256)", userAgent: Array("Mozilla/5.0 (X11; Linux x86_64) simulate/\(thread)".utf8),
                    countryCode: code, countryName: nil, time: days.time(ofVisit: index, of: visits))
                if !paths.isEmpty { visit.path = paths[index % paths.count] }
                visit.referrer = hosts[index % hosts.count]
                recorder.record(visit)
            }
        }
        recorder.stop()

        let statistics = recorder.statistics
        let figures: JSON = [
            "recorded": .int(statistics.visitsRecorded), "written": .int(statistics.visitsWritten),
            "failed_writes": .int(statistics.failedWrites),
        ]
        print(figures.text)
        // A write that failed and was retried is reported above, not a failure: what must hold is that
        // every visit was written.
        if statistics.visitsWritten != visits {
            throw ExitCode.failure
        }
    }
}

/// Made-up visit times over the last `days` days, for a chart that looks like a site's: weekends
/// quieter, the recent weeks busier, a little wobble. Deterministic, so the same command draws the
/// same chart.
struct SpreadDays {
    let days: Int
    let now: Date
    private let cumulative: [Double]

    init(days: Int, now: Date) {
        self.days = days
        self.now = now
        let today = UTCTimestamp.day(now)
        var total = 0.0
        var cumulative: [Double] = []
        for offset in stride(from: days - 1, through: 0, by: -1) {
            let day = today - offset
            // 1970-01-01 was a Thursday: (day + 3) % 7 is 5 or 6 on Saturday and Sunday.
            let weekend = (day + 3) % 7 >= 5
            let fractionOfToday = offset == 0 ? now.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) / 86_400 : 1
            total += (1 + Double(days - offset) / Double(days)) * (weekend ? 0.65 : 1) * (1 + 0.2 * sin(Double(day))) * fractionOfToday
            cumulative.append(total)
        }
        self.cumulative = cumulative.map { $0 / max(total, 1e-9) }
    }

    func time(ofVisit index: Int, of count: Int) -> Date {
        guard days > 0 else { return now }
        // Visits are spread evenly over the weights; the golden ratio scatters them within each day.
        let position = (Double(index) + 0.5) / Double(max(count, 1))
        let slot = cumulative.firstIndex { position <= $0 } ?? days - 1
        let within = (Double(index) * 0.618_033_988_75).truncatingRemainder(dividingBy: 1)
        let dayStart = Double(UTCTimestamp.day(now) - (days - 1 - slot)) * 86_400
        let length = slot == days - 1 ? now.timeIntervalSince1970 - dayStart : 86_400
        return Date(timeIntervalSince1970: dayStart + within * length)
    }
}
