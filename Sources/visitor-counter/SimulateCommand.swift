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

    func validate() throws {
        guard visits >= 0, batchSize > 0, threads > 0, flushInterval > 0 else {
            throw ValidationError("--visits must be 0 or more, --batch-size, --threads and --flush-interval more than 0")
        }
    }

    func run() throws {
        bootstrapLogging()
        let codes = countries.split(separator: ",").map(String.init)
        let store = try VisitorStore(path: database)
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
                recorder.record(
                    Visit(
                        ip: "192.0.2.\(index % 256)", userAgent: Array("simulate/\(thread)".utf8),
                        countryCode: code, countryName: nil, time: Date()))
            }
        }
        recorder.stop()

        let statistics = recorder.statistics
        print(
            "{\"recorded\": \(statistics.visitsRecorded), \"written\": \(statistics.visitsWritten), "
                + "\"failed_writes\": \(statistics.failedWrites)}")
        if statistics.failedWrites > 0 || statistics.visitsWritten != visits {
            throw ExitCode.failure
        }
    }
}
