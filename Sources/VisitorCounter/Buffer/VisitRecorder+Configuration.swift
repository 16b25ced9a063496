import Foundation

extension VisitRecorder {
    /// Figures about the buffer and the writer, for logs, tests, health and metrics.
    public struct Statistics: Sendable, Equatable {
        public var visitsRecorded = 0
        public var visitsWritten = 0
        public var batchesWritten = 0
        public var failedWrites = 0
        /// Failed writes since the last one that worked.
        public var consecutiveFailures = 0
        /// Visits counted without keeping their row, because the buffer was at its bound.
        public var visitsWithoutRows = 0
        /// Visits that went into no journal (it was full, or there is none): lost if the process dies.
        public var visitsNotJournaled = 0
        /// Visits left in the journal at a stop, for the next start to write. (Named for the spill files
        /// that did this before the journal, and kept so in the health JSON.)
        public var spilledVisits = 0
        /// Visits from other workers' journals and from old spill files written to the database by this worker.
        public var replayedVisits = 0
        public var bufferedVisits = 0
        public var bufferedRows = 0
        /// When the oldest visit still held was answered.
        public var oldestBufferedVisit: Date?
        /// When the last batch was written.
        public var lastWrite: Date?
        /// When the writer thread last went round its loop: it does at least every flush interval
        /// unless it is stuck (a write waits out the busy timeout at most).
        public var lastPass: Date?
        /// How long successful writes took.
        public var writeLatency = LatencyHistogram()
        public var lastError: String?

        public init() {}
    }

    /// How a recorder buffers, writes and keeps visits; whole from its `init`, as a worker receives it
    /// inside ``WorkerProcess/Configuration``.
    public struct Configuration: Sendable, Codable, Equatable {
        public var batchSize: Int
        public var flushInterval: Duration
        /// The most rows held in memory; visits beyond are counted without rows.
        public var bufferLimit: Int
        public var retry: RetryPolicy
        /// How long ``VisitRecorder/stop()`` writes batches before it leaves the rest in the journal.
        public var stopWriteLimit: Duration
        /// How long ``VisitRecorder/stop()`` goes on trying the database, from the stop, for visits that
        /// are in no journal, before it gives them up as lost.
        public var stopRetryLimit: Duration
        /// This worker's number, for the journal's name and the audit log.
        public var worker: Int
        /// Which requests are bots' (`--count-bots`).
        public var sorting: VisitSorting
        /// What of each address is stored (`--store-ip`): the journal keeps no more than that.
        public var storeIP: StoreIPMode

        public static let defaultBufferLimit = 50_000
        /// `--batch-size` unless told.
        public static let defaultBatchSize = 1_000

        public init(
            batchSize: Int, flushInterval: Duration, bufferLimit: Int = defaultBufferLimit, retry: RetryPolicy = .standard,
            stopWriteLimit: Duration = .seconds(15), stopRetryLimit: Duration = .seconds(30), worker: Int = 0,
            sorting: VisitSorting = .standard, storeIP: StoreIPMode = .full
        ) {
            self.stopWriteLimit = stopWriteLimit
            self.batchSize = batchSize
            self.flushInterval = flushInterval
            self.bufferLimit = bufferLimit
            self.retry = retry
            self.stopRetryLimit = stopRetryLimit
            self.worker = worker
            self.sorting = sorting
            self.storeIP = storeIP
        }
    }
}
