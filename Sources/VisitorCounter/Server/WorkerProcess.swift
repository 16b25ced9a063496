import Synchronization
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A worker process from start to exit: its buffer and writer, its stats cache, its request threads,
/// and the graceful stop on SIGTERM or SIGINT.
public enum WorkerProcess {
    /// Runs until a stop signal; then finishes the requests in flight, writes every buffered visit
    /// (or leaves it in the journal) and returns. Call it before any thread has started.
    public static func run(_ configuration: Configuration, logger: Logger) throws {
        Signals.block(Signals.stop + Signals.ignored)
        Signals.ignoreBrokenPipes()
        let parent = getppid()
        let startedAt = Date()

        let board = try configuration.statusDescriptor.map(WorkerStatusBoard.init(descriptor:))
        let location = try StoreLocation(database: configuration.database, stateDirectory: configuration.stateDirectory)
        guard let calendar = LocalCalendar(identifier: configuration.timeZone) else {
            throw StoreError.unknownRecordedTimeZone(configuration.timeZone)
        }
        let store = try location.open(storeIP: configuration.recorder.storeIP, timeZone: calendar)
        let audit = AuditLog(database: store.localFiles, logger: logger)
        let journal = openJournal(configuration, localFiles: store.localFiles, audit: audit)
        let recorder = VisitRecorder(
            store: store, configuration: configuration.recorder, journal: journal, audit: audit, logger: logger,
            publish: { statistics in
                board?.publish(
                    WorkerStatus(pid: getpid(), startedAt: startedAt, writer: statistics),
                    at: configuration.index)
            })
        let page = IndexPage(
            template: try configuration.indexTemplate.map {
                try IndexTemplate(sharedDescriptor: Supervisor.templateDescriptor, source: $0)
            } ?? .standard,
            contentSecurityPolicy: configuration.indexCSP)
        let cache = try StatsCache(store: store, period: configuration.statsCache, page: page, logger: logger)
        let history = DailyHistory(
            period: configuration.statsCache,
            maxConcurrentReads: DailyHistory.defaultConcurrentReads(threads: configuration.threads),
            read: { from, to in try store.daily(from: from, to: to) })
        let pagesReading = Atomic<Bool>(false)
        let router = Router(
            pages: { cache.pages },
            health: {
                board.map { board in
                    HealthReport(
                        statuses: board.statuses(), threshold: configuration.healthThreshold, stats: cache.pages.stats,
                        geoipMaxAge: configuration.geoipMaxAge)
                }
            },
            daily: { from, to in try history.days(from: from, to: to) },
            geoipDatabaseSeen: { cache.use($0) }, ignoredAddresses: configuration.ignoredAddresses,
            dailyPages: { from, to in
                // One read at a time per worker: a burst of ranges holds one request thread, not all.
                guard pagesReading.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
                    throw DailyHistory.Busy(retryAfter: 1, reason: "another daily pages read is under way")
                }
                defer { pagesReading.store(false, ordering: .releasing) }
                return try store.dailyPages(from: from, to: to)
            })
        let worker = try FastCGIWorker(
            listeningDescriptor: configuration.listeningDescriptor, threadCount: configuration.threads,
            router: router, recordVisit: { recorder.record($0) }, allowList: configuration.allowList,
            heartbeat: { board?.beat(at: configuration.index) }, logger: logger)
        // FCGX_Init installs its own SIGPIPE, SIGUSR1 and SIGTERM handlers; ours must win.
        Signals.ignoreBrokenPipes()
        Signals.undoLibraryHandlers()

        recorder.start()
        cache.start {
            // The writer publishes after each pass, but a pass can wait out the busy timeout: the
            // figures are published from here too, so they are never older than the cache period.
            recorder.publishNow()
            // The supervisor is gone (killed with SIGKILL): stop rather than serve on unsupervised.
            // The stop signal, blocked and taken below, gives the clean stop. Should sending it fail, the
            // next tick tries again.
            if getppid() != parent {
                do {
                    try systemCall("kill", "own process with SIGTERM") { kill(getpid(), SIGTERM) }
                } catch {
                    logger.error("the supervisor is gone and the worker cannot signal itself to stop", metadata: ["error": "\(error)"])
                }
            }
        }
        worker.start()
        if configuration.retentionDays > 0 && configuration.index == 0 {
            Retention(store: store, days: configuration.retentionDays, logger: logger).start()
        }
        logger.info("worker started", metadata: ["worker.threads": "\(configuration.threads)"])

        var signal: Int32?
        repeat {
            signal = Signals.wait(for: Signals.stop + Signals.ignored, timeout: nil)
            if let signal, Signals.ignored.contains(signal) {
                logger.info("signal ignored", metadata: ["signal": "\(signal)"])
            }
        } while signal.map(Signals.ignored.contains) ?? true
        logger.info("worker stopping", metadata: ["signal": "\(signal ?? 0)"])
        worker.stop()
        recorder.stop()
        let statistics = recorder.statistics
        logger.info(
            "worker stopped",
            metadata: [
                "worker.requests": "\(worker.answered)", "worker.visits": "\(statistics.visitsRecorded)",
                "worker.written": "\(statistics.visitsWritten)", "worker.failed_writes": "\(statistics.failedWrites)",
                "worker.left_in_journal": "\(statistics.spilledVisits)", "worker.without_rows": "\(statistics.visitsWithoutRows)",
            ])
    }

    /// This worker's new journal; `nil`, said in the audit log, when it cannot be made (a full disk,
    /// say): the worker then serves with its visits in memory only, as a crash would lose them.
    private static func openJournal(_ configuration: Configuration, localFiles: String, audit: AuditLog) -> VisitJournal? {
        do {
            return try VisitJournal.create(
                database: localFiles, worker: configuration.index,
                capacity: VisitJournal.capacity(rows: configuration.recorder.bufferLimit))
        } catch {
            let remedy = error is VisitJournal.CreateError
                ? "make the database writable: once the waiting journals are written, the next start of this worker makes one again"
                : "free space next to the database and restart"
            audit.record(
                .init(
                    event: .journalUnavailable, worker: configuration.index, visits: 0, error: "\(error)",
                    action: "serving with visits in memory only: a crash of this worker loses what it holds; \(remedy)"),
                level: .error)
            return nil
        }
    }
}
