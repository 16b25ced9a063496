import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The append-only record of every failed write and every degradation, next to the database
/// (`visitors.sqlite.audit.jsonl`), one JSON object per line, shared by all workers.
///
/// When the file passes ``maxBytes`` it is renamed to `….audit.jsonl.1` (replacing the one before), so
/// the log takes at most twice that on disk. An entry is also sent to the process log. An entry that
/// cannot be written (the disk is full, say: the very failure it records) is kept in memory, up to
/// ``maxPending`` entries, and written with the next one that can be.
public final class AuditLog: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        /// What happened: see ``Event``.
        public var event: String
        public var time: String
        public var worker: Int
        public var pid: Int32
        /// The visits concerned: the batch that failed, the visits spilled or replayed, and so on.
        public var visits: Int
        public var error: String?
        /// What the worker did about it, in words.
        public var action: String

        public init(event: Event, time: Date = Date(), worker: Int, visits: Int, error: String? = nil, action: String) {
            self.event = event.rawValue
            self.time = UTCTimestamp.format(time, milliseconds: true)
            self.worker = worker
            self.pid = getpid()
            self.visits = visits
            self.error = error
            self.action = action
        }
    }

    public enum Event: String, Sendable {
        case writeFailed = "write_failed"
        case writeRecovered = "write_recovered"
        case rowsDropped = "rows_dropped"
        case rowsKeptAgain = "rows_kept_again"
        case spilled
        case spillFailed = "spill_failed"
        case spillReplayed = "spill_replayed"
        case spillReplayFailed = "spill_replay_failed"
        case visitsLost = "visits_lost"
        case journalFull = "journal_full"
        case journalHasRoom = "journal_has_room"
        case journalUnavailable = "journal_unavailable"
        case leftInJournal = "left_in_journal"
        case journalReplayed = "journal_replayed"
        case journalReplayFailed = "journal_replay_failed"
        case journalRejected = "journal_rejected"
        case lostBatchesRewritten = "lost_batches_rewritten"
    }

    public let path: String
    public let maxBytes: Int
    private let logger: Logger
    private let pending = Mutex<[Entry]>([])

    public static let defaultMaxBytes = 1 << 20
    public static let maxPending = 1000

    public init(path: String, maxBytes: Int = defaultMaxBytes, logger: Logger) {
        self.path = path
        self.maxBytes = maxBytes
        self.logger = logger
    }

    /// The audit log of the database at `database`.
    public convenience init(database: String, maxBytes: Int = defaultMaxBytes, logger: Logger) {
        self.init(path: "\(database).audit.jsonl", maxBytes: maxBytes, logger: logger)
    }

    /// Where the previous file goes when the log is rotated.
    public var rotatedPath: String { path + ".1" }

    /// Appends `entry` (after any kept from before) and logs it at `level`.
    public func record(_ entry: Entry, level: Logger.Level = .warning) {
        Self.log(entry, level: level, to: logger)
        pending.withLock { pending in
            pending.append(entry)
            if pending.count > Self.maxPending { pending.removeFirst(pending.count - Self.maxPending) }
            do {
                try append(pending)
                pending.removeAll()
            } catch {
                logger.error("cannot write the audit log; the entry is kept in memory", metadata: ["audit.path": "\(path)", "error": "\(error)"])
            }
        }
    }

    /// Sends `entry` to the process log (and so to journald), as every entry recorded is.
    public static func log(_ entry: Entry, level: Logger.Level, to logger: Logger) {
        logger.log(
            level: level, "\(entry.event)",
            metadata: [
                "audit.visits": "\(entry.visits)", "audit.action": "\(entry.action)",
                "audit.error": "\(entry.error ?? "")",
            ])
    }

    /// Writes the entries kept in memory, if any; the writer calls this after each successful write.
    public func flushPending() {
        pending.withLock { pending in
            guard !pending.isEmpty, (try? append(pending)) != nil else { return }
            pending.removeAll()
        }
    }

    private func append(_ entries: [Entry]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes: [UInt8] = []
        for entry in entries {
            bytes += try encoder.encode(entry)
            bytes.append(UInt8(ascii: "\n"))
        }
        var written = false
        while !written {
            written = try LockedFile.withAppendLock(path, mode: 0o640) { descriptor, size in
                guard size == 0 || size + bytes.count <= maxBytes else {
                    // Still under the lock: the next open of the old name makes a new file.
                    try systemCall("rename", path) { rename(path, rotatedPath) }
                    return false
                }
                try LockedFile.appendLines(bytes, to: descriptor, size: size, path: path, sync: false)
                return true
            }
        }
    }

    /// Every entry on disk, oldest first: the rotated file, then the current one. Lines that do not
    /// parse are skipped.
    public static func read(path: String) throws -> [Entry] {
        let decoder = JSONDecoder()
        var entries: [Entry] = []
        for file in [path + ".1", path] where FileManager.default.fileExists(atPath: file) {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                if let entry = try? decoder.decode(Entry.self, from: Data(line.utf8)) { entries.append(entry) }
            }
        }
        return entries
    }
}
