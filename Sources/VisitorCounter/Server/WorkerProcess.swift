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
        public var listeningDescriptor: Int32 = 0
        public var threads: Int
        public var batchSize: Int
        public var flushInterval: Duration
        public var statsCache: Duration

        public init(database: String, threads: Int, batchSize: Int, flushInterval: Duration, statsCache: Duration) {
            self.database = database
            self.threads = threads
            self.batchSize = batchSize
            self.flushInterval = flushInterval
            self.statsCache = statsCache
        }
    }

    /// Runs until a stop signal; then finishes the requests in flight, writes every buffered visit and
    /// returns. Call it before any thread has started.
    public static func run(_ configuration: Configuration, logger: Logger) throws {
        Signals.block(Signals.stop)
        Signals.ignoreBrokenPipes()
        let parent = getppid()

        let store = try VisitorStore(path: configuration.database)
        let recorder = VisitRecorder(
            store: store, batchSize: configuration.batchSize, flushInterval: configuration.flushInterval,
            logger: logger)
        let cache = try StatsCache(store: store, period: configuration.statsCache, logger: logger)
        let router = Router(pages: { cache.pages }, recordVisit: { recorder.record($0) })
        let worker = try FastCGIWorker(
            listeningDescriptor: configuration.listeningDescriptor, threadCount: configuration.threads,
            router: router, logger: logger)
        // FCGX_Init installs its own SIGPIPE handler; ours must win.
        Signals.ignoreBrokenPipes()

        recorder.start()
        cache.start {
            // The supervisor is gone (killed with SIGKILL): stop rather than serve on unsupervised.
            if getppid() != parent { kill(getpid(), SIGTERM) }
        }
        worker.start()
        logger.info("worker started", metadata: ["worker.threads": "\(configuration.threads)"])

        let signal = Signals.wait(for: Signals.stop, timeout: nil)
        logger.info("worker stopping", metadata: ["signal": "\(signal ?? 0)"])
        worker.stop()
        recorder.stop()
        let statistics = recorder.statistics
        logger.info(
            "worker stopped",
            metadata: [
                "worker.requests": "\(worker.answered)", "worker.visits": "\(statistics.visitsRecorded)",
                "worker.written": "\(statistics.visitsWritten)", "worker.failed_writes": "\(statistics.failedWrites)",
            ])
    }
}
