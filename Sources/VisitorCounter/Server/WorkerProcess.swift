import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A worker process from start to exit: its buffer and writer, its stats cache, its request threads,
/// and the graceful stop on SIGTERM or SIGINT.
public enum WorkerProcess {
    public struct Configuration: Sendable {
        public var database: String
        /// This host's folder for the journals and audit log when `database` is a PostgreSQL URI.
        public var stateDirectory: String?
        public var listeningDescriptor: Int32 = 0
        /// The supervisor's ``WorkerStatusBoard``; `nil` leaves the health routes answering 404.
        public var statusDescriptor: Int32?
        public var index = 0
        public var threads: Int
        public var recorder: VisitRecorder.Configuration
        public var statsCache: Duration
        public var healthThreshold: Duration
        /// Count bots' requests as visits (`--count-bots`).
        public var countsBots: Bool
        /// What of each address is stored (`--store-ip`).
        public var storeIP: StoreIPMode = .full
        /// Raw rows older than this many days are deleted (`--retention-days`); 0 keeps them all.
        public var retentionDays = 0
        /// How `GET /` is rendered (`--index-template`, `--index-csp`).
        public var indexPage = IndexPage()
        /// Health answers 503 when the country database is older than this; `nil` never (`--geoip-max-age-days`).
        public var geoipMaxAge: Duration? = HealthReport.defaultGeoIPMaxAge
        /// The peers a TCP socket accepts (`--allowed-clients`); `nil` accepts any.
        public var allowList: PeerAllowList?

        public init(
            database: String, index: Int, threads: Int, recorder: VisitRecorder.Configuration, statsCache: Duration,
            healthThreshold: Duration, countsBots: Bool = false, storeIP: StoreIPMode = .full, retentionDays: Int = 0
        ) {
            self.countsBots = countsBots
            self.storeIP = storeIP
            self.retentionDays = retentionDays
            self.database = database
            self.index = index
            self.threads = threads
            self.recorder = recorder
            self.statsCache = statsCache
            self.healthThreshold = healthThreshold
        }
    }

    /// Runs until a stop signal; then finishes the requests in flight, writes every buffered visit
    /// (or leaves it in the journal) and returns. Call it before any thread has started.
    public static func run(_ configuration: Configuration, logger: Logger) throws {
        Signals.block(Signals.stop + Signals.ignored)
        Signals.ignoreBrokenPipes()
        let parent = getppid()
        let startedAt = Date()

        let board = try configuration.statusDescriptor.map(WorkerStatusBoard.init(descriptor:))
        let location = try StoreLocation(database: configuration.database, stateDirectory: configuration.stateDirectory)
        let store = try location.open(countsBots: configuration.countsBots, storeIP: configuration.storeIP)
        var recorderConfiguration = configuration.recorder
        recorderConfiguration.worker = configuration.index
        recorderConfiguration.countsBots = configuration.countsBots
        recorderConfiguration.storeIP = configuration.storeIP
        let audit = AuditLog(database: store.localFiles, logger: logger)
        let journal = openJournal(configuration, localFiles: store.localFiles, audit: audit)
        let recorder = VisitRecorder(
            store: store, configuration: recorderConfiguration, journal: journal, audit: audit, logger: logger,
            publish: { statistics in
                board?.publish(
                    WorkerStatus(pid: getpid(), startedAt: startedAt, writer: statistics),
                    at: configuration.index)
            })
        let cache = try StatsCache(
            store: store, period: configuration.statsCache, page: configuration.indexPage, logger: logger)
        let history = DailyHistory(
            period: configuration.statsCache,
            maxConcurrentReads: DailyHistory.defaultConcurrentReads(threads: configuration.threads),
            read: { from, to in try store.daily(from: from, to: to) })
        let router = Router(
            pages: { cache.pages },
            recordVisit: { recorder.record($0) },
            health: {
                board.map { board in
                    HealthReport(
                        statuses: board.statuses(), threshold: configuration.healthThreshold, stats: cache.pages.stats,
                        geoipMaxAge: configuration.geoipMaxAge)
                }
            },
            daily: { from, to in try history.days(from: from, to: to) },
            geoipDatabaseSeen: { cache.use($0) })
        let worker = try FastCGIWorker(
            listeningDescriptor: configuration.listeningDescriptor, threadCount: configuration.threads,
            router: router, allowList: configuration.allowList, logger: logger)
        // FCGX_Init installs its own SIGPIPE, SIGUSR1 and SIGTERM handlers; ours must win.
        Signals.ignoreBrokenPipes()
        Signals.undoLibraryHandlers()

        recorder.start()
        cache.start {
            // The writer publishes after each pass, but a pass can wait out the busy timeout: the
            // figures are published from here too, so they are never older than the cache period.
            recorder.publishNow()
            // The supervisor is gone (killed with SIGKILL): stop rather than serve on unsupervised.
            if getppid() != parent { kill(getpid(), SIGTERM) }
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
