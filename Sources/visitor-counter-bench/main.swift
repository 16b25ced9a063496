import Foundation
import Logging
import VisitorCounter

/// Measures the writer, a request thread's recording of a visit and the stats read on a throw-away
/// database; prints one line per figure.
///
/// Run in release mode: `swift run -c release visitor-counter-bench`, from the repository's top folder
/// so that it finds isbot's user agents in `../shared/bots` for the bot check. With `--postgres URI` (an empty
/// database: `scripts/bench-postgres.sh` makes a throw-away cluster and passes it) the writer is also
/// measured into PostgreSQL, beside SQLite. The SQLite writer's lines end with its rate as a ratio of
/// the limit's, ``LimitWriter``: the same batches written through SQLite's C API, right after it.
/// `--visits N` sets how many visits each part writes (200,000); `--time-zone NAME` the zone of the
/// days (UTC); `--sqlite-writer-only` stops after
/// the SQLite writer and its limit, `--stats-only` measures the stats read alone (for
/// `valgrind --tool=callgrind`).

let countries = ["US", "GB", "DE", "FR", "JP", "BR", "IN", "CA", "AU", "XX"]
let userAgent = Array(
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".utf8)

/// `size` visits, as the service's writer gets them: each batch a span of the worker's journal
/// (`--batch-size` is 1,000 by default), so the store checks and records the journal's progress too.
func makeBatch(size: Int, offset: Int) -> VisitBatch {
    var batch = VisitBatch(
        counting: (0..<size).map { index in
            let n = offset + index
            return Visit(
                ip: "198.51.\(n / 256 % 256).\(n % 256)", userAgent: userAgent,
                countryCode: countries[n % countries.count], countryName: nil, time: Date())
        })
    batch.journal = JournalSpan(id: "bench-\(getpid())", start: UInt64(offset), end: UInt64(offset + size))
    return batch
}

/// The CPU seconds this process has used so far, user and system.
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("visitor-counter-bench-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }
/// The zone of the days (`--time-zone`, UTC by default as for `serve`): every visit's local day is looked up.
let timeZone = CommandLine.arguments.firstIndex(of: "--time-zone").flatMap {
    $0 + 1 < CommandLine.arguments.count ? LocalCalendar(identifier: CommandLine.arguments[$0 + 1]) : nil
} ?? .utc
let store = try SQLiteStore(path: directory.appendingPathComponent("bench.sqlite").path, timeZone: timeZone)

/// How many visits each of ``measureWrites(into:label:limit:)``'s three parts writes (`--visits`).
let visitsPerPart = CommandLine.arguments.firstIndex(of: "--visits").flatMap {
    $0 + 1 < CommandLine.arguments.count ? Int(CommandLine.arguments[$0 + 1]) : nil
} ?? 200_000

/// Writes 200,000 visits (`--visits`) in batches of 1,000, then of 10,000, then as the service's
/// writer takes a backlog, one line each; answers how many.
///
/// With `limit`, each part's batches are then written again by the limit (``LimitWriter``) into a
/// database of its own, and the line gives the store's rate as a ratio of the limit's.
///
/// The backlog is 200,000 visits held in a ``VisitBuffer`` with the service's default batch size, each
/// in the journal, taken and written as the writer does when it fell behind: the waiting batches
/// together, up to ``VisitBuffer/largestBatch`` rows at once.
///
/// `client_cpu_us` is this process's CPU time per visit (the writer's own work, the store's client
/// side): on a shared machine the rate depends on what else runs, the CPU time much less.
func measureWrites(into store: any CounterStore, label: String, limit: LimitWriter? = nil) throws -> Int {
    var written = 0
    func report(_ batch: String, visits: Int, elapsed: Duration, cpu: Double, limit limitBatches: [VisitBatch]) throws {
        let rate = Double(visits) / elapsed.inSeconds
        var line = "write  store=\(label)  batch=\(batch)  visits=\(visits)  visits/s=\(Int(rate))"
            + "  client_cpu_us=\(String(format: "%.1f", cpu / Double(visits) * 1e6))"
        if let limit {
            let limitElapsed = try ContinuousClock().measure {
                for batch in limitBatches { try limit.write(batch) }
            }
            let limitRate = Double(visits) / limitElapsed.inSeconds
            line += "  limit_visits/s=\(Int(limitRate))  \(String(format: "%.2f", rate / limitRate))x the limit"
        }
        print(line)
    }
    for batchSize in [1_000, 10_000] {
        let batches = (0..<(visitsPerPart / batchSize)).map { makeBatch(size: batchSize, offset: written + $0 * batchSize) }
        let cpuBefore = processCPUSeconds()
        let elapsed = try ContinuousClock().measure {
            for batch in batches { try store.write(batch) }
        }
        try report(
            "\(batchSize)", visits: batches.count * batchSize, elapsed: elapsed, cpu: processCPUSeconds() - cpuBefore,
            limit: batches)
        written += batches.count * batchSize
    }
    let now = ContinuousClock.now
    var buffer = VisitBuffer(batchSize: VisitRecorder.Configuration.defaultBatchSize, flushInterval: .seconds(1), sorting: .standard, now: now)
    let backlog = makeBatch(size: visitsPerPart, offset: written)
    for (index, visit) in backlog.visits.enumerated() {
        let position = UInt64(written + index)
        _ = buffer.append(visit, now: now, journal: JournalSpan(id: "bench-\(getpid())", start: position, end: position + 1))
    }
    let cpuBefore = processCPUSeconds()
    var taken: [VisitBatch] = []
    let elapsed = try ContinuousClock().measure {
        while let batch = buffer.takeBatch(now: now, draining: true) {
            try store.write(batch)
            buffer.batchWritten()
            if limit != nil { taken.append(batch) }
        }
    }
    try report(
        "\(VisitRecorder.Configuration.defaultBatchSize)+backlog", visits: backlog.count, elapsed: elapsed,
        cpu: processCPUSeconds() - cpuBefore, limit: taken)
    return written + backlog.count
}

/// What a request thread does for `GET /` once the header has gone (FastCGIWorker): 50,000 calls of
/// ``VisitRecorder/record(_:)`` with a journal, the writer running, as `serve` does by default. A worker
/// killed in this time leaves a cut-off answer uncounted (docs/operations.md). `bot_check_us` is the
/// part of it that tells bots apart by their user agent.
func measureRecording() throws {
    let path = directory.appendingPathComponent("record.sqlite").path
    let recorder = VisitRecorder(
        store: try SQLiteStore(path: path),
        configuration: .init(batchSize: VisitRecorder.Configuration.defaultBatchSize, flushInterval: .seconds(1)),
        journal: try VisitJournal.create(database: path, worker: 0, capacity: 1 << 26),
        logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
    recorder.start()
    defer { recorder.stop() }
    let visits = makeBatch(size: 50_000, offset: 0).visits
    var bots = 0
    let botCheck = ContinuousClock().measure {
        for visit in visits where VisitSorting.standard.setsApart(visit) { bots += 1 }
    }
    let recording = ContinuousClock().measure {
        for visit in visits { recorder.record(visit) }
    }
    func microseconds(_ elapsed: Duration) -> String { String(format: "%.2f", elapsed.inSeconds / Double(visits.count) * 1e6) }
    print("record  visits=\(visits.count)  bots=\(bots)  us_per_visit=\(microseconds(recording))  bot_check_us=\(microseconds(botCheck))")
}

/// The user agents of one of isbot's fixture files in `../shared/bots` (or `--bots DIR`): the items of
/// its lists, plain or quoted; `nil` when the file is not there.
func userAgents(inCorpus name: String) -> [String]? {
    var folder = "../shared/bots"
    if let flag = CommandLine.arguments.firstIndex(of: "--bots"), flag + 1 < CommandLine.arguments.count {
        folder = CommandLine.arguments[flag + 1]
    }
    guard let data = FileManager.default.contents(atPath: "\(folder)/\(name)") else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line -> String? in
        guard line.hasPrefix("  - ") else { return nil }
        let item = line.dropFirst(4)
        if item.count >= 2, let quote = item.first, quote == "\"" || quote == "'", item.last == quote {
            return String(item.dropFirst().dropLast())
        }
        return String(item)
    }
}

/// The bot check alone, as the request thread calls it (``VisitSorting/setsApart(_:)``), over
/// isbot's crawlers, its browsers and both together, each user agent 200 times: one line each with
/// the µs per user agent.
func measureBotCheck() {
    let corpora = [("crawlers", userAgents(inCorpus: "crawlers.yml")), ("browsers", userAgents(inCorpus: "browsers.yml"))]
    var mix: [Visit] = []
    func measure(_ label: String, _ visits: [Visit]) {
        let rounds = 200
        var bots = 0
        let elapsed = ContinuousClock().measure {
            for _ in 0..<rounds {
                for visit in visits where VisitSorting.standard.setsApart(visit) { bots += 1 }
            }
        }
        let perUserAgent = elapsed.inSeconds / Double(rounds * visits.count) * 1e6
        print(
            "botcheck  corpus=\(label)  user_agents=\(visits.count)  bots=\(bots / rounds)"
                + "  us_per_user_agent=\(String(format: "%.3f", perUserAgent))")
    }
    for (label, list) in corpora {
        guard let list else {
            print("botcheck  corpus=\(label)  missing: no ../shared/bots (or --bots DIR)")
            continue
        }
        let visits = list.map { Visit(ip: "192.0.2.1", userAgent: Array($0.utf8), countryCode: "US", countryName: nil, time: Date()) }
        measure(label, visits)
        mix += visits
    }
    if corpora.allSatisfy({ $0.1 != nil }) { measure("both", mix) }
}

// `--postgres-only` leaves out SQLite and the reads, to profile the PostgreSQL writer alone;
// `--sqlite-writer-only` leaves out all but the SQLite writer and its limit, `--stats-only` all but the
// stats read (on a database of the day's minutes and countries only), for a profiler.
let postgresOnly = CommandLine.arguments.contains("--postgres-only")
let statsOnly = CommandLine.arguments.contains("--stats-only")
let limitPath = directory.appendingPathComponent("limit.sqlite").path
_ = try SQLiteStore(path: limitPath)
var written = postgresOnly || statsOnly ? 0 : try measureWrites(into: store, label: "sqlite", limit: try LimitWriter(path: limitPath))
if CommandLine.arguments.contains("--sqlite-writer-only") { exit(0) }
if let flag = CommandLine.arguments.firstIndex(of: "--postgres"), flag + 1 < CommandLine.arguments.count {
    let postgres = try PostgresStore(uri: CommandLine.arguments[flag + 1], stateDirectory: directory.path)
    _ = try measureWrites(into: postgres, label: "postgresql")
}
if postgresOnly { exit(0) }
if !statsOnly {
    try measureRecording()
    measureBotCheck()
    while written < 1_000_000 {
        try store.write(makeBatch(size: 10_000, offset: written))
        written += 10_000
    }
}
// A server's day: a row in every minute of the last 24 hours, and 100 countries.
let hundredCodes = (0..<100).map { index in
    let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return "\(letters[index / 26])\(letters[index % 26])"
}
let statsNow = Date()
try store.write(
    VisitBatch(
        counting: (0..<(24 * 60)).map { minute in
            Visit(
                trustedIP: "192.0.2.\(minute % 256)", userAgent: "bench", country: "Bench",
                countryCode: hundredCodes[minute % hundredCodes.count], time: statsNow - Double(minute * 60))
        }),
    at: statsNow)
let rows = try store.visitorRowCount()
let statsShape = try store.stats()
var samples: [Double] = []
for _ in 0..<1_000 {
    let elapsed = try ContinuousClock().measure { _ = try store.stats() }
    samples.append(elapsed.inSeconds * 1_000)
}
samples.sort()
print(
    "stats  rows=\(rows)  countries=\(statsShape.countries.count)  last_day=\(statsShape.recent.lastDay)  median_ms=\(String(format: "%.3f", samples[samples.count / 2]))"
        + "  p99_ms=\(String(format: "%.3f", samples[samples.count * 99 / 100]))")

if statsOnly { exit(0) }

// The index page as each worker's stats cache makes it once per period: one read, one rendering.
func measurePage(_ label: String, _ makePages: () throws -> RenderedPages) rethrows {
    var samples: [Double] = []
    var bytes = 0
    for _ in 0..<200 {
        let elapsed = try ContinuousClock().measure { bytes = try makePages().index.body.utf8.count }
        samples.append(elapsed.inSeconds * 1_000)
    }
    samples.sort()
    print(
        "page   \(label)  bytes=\(bytes)  median_ms=\(String(format: "%.3f", samples[samples.count / 2]))"
            + "  p99_ms=\(String(format: "%.3f", samples[samples.count * 99 / 100]))")
}
try measurePage("countries=\(countries.count)") {
    let figures = try store.statsAndDays(days: Dashboard.chartDays)
    return RenderedPages(dashboard: Dashboard(stats: figures.stats, days: figures.days, refreshSeconds: 10), maxAge: 2)
}
// Every two-letter code a site could see, as a busy international site would have them.
let manyCountries = Dictionary(
    uniqueKeysWithValues: (0..<250).map { index -> (String, Int) in
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".unicodeScalars)
        return ("\(letters[index / 26 % 26])\(letters[index % 26])", 1_000 + index)
    })
try measurePage("countries=250") {
    let figures = try store.statsAndDays(days: Dashboard.chartDays)
    var stats = figures.stats
    stats.countries = manyCountries
    return RenderedPages(dashboard: Dashboard(stats: stats, days: figures.days, refreshSeconds: 10), maxAge: 2)
}
