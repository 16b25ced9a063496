import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker's record of every visit it answered and has not yet written, in a file next to the
/// database that outlives the process: `visitors.sqlite.journal-N-ID` (N is the worker, ID the
/// journal's own).
///
/// The file is mapped with `MAP_SHARED`, so an append is a `memcpy` into the page cache under the
/// recorder's lock, with no system call: when the process dies, from SIGKILL, an abort or the OOM
/// killer, the kernel still holds the pages and writes them to the file. It is a ring of
/// ``JournalRecord``s addressed by logical positions that only grow: the header holds the position
/// after the last whole record (``end``), stored with release ordering after the record's bytes, so a
/// process killed in the middle of a `memcpy` leaves a record that was never published (and whose
/// visit never got its answer).
///
/// A batch's transaction stores how far the journal has been written (``SQLiteStore``'s
/// `journal_progress`), so writing is exactly-once by construction: a replay starts from that
/// position, and a batch whose range is already written is skipped. A live journal is held with an
/// exclusive `flock` by its worker for the worker's life; a journal whose lock can be taken belongs to
/// a process that has ended, and any worker replays its unwritten tail (``JournalReplay``) and
/// removes it.
///
/// Files are opened with `O_NOFOLLOW`; a journal is replayed only when it is a regular file owned by
/// this process's user with no permissions for anyone else, as this type makes them.
///
/// `@unchecked Sendable`: ``append(_:written:)`` is only called under the recorder's lock; the rest
/// reads constants, or the header through atomics.
public final class VisitJournal: @unchecked Sendable {
    public let path: String
    /// The journal's ID, as `journal_progress` knows it.
    public let id: String
    /// The ring's size in bytes.
    public let capacity: Int
    private let descriptor: Int32
    private let base: UnsafeMutableRawPointer
    private let mappedSize: Int

    /// Version 3 records every bot's request (without `--count-bots`) as ``JournalRecord/Kind/botWithoutRow``;
    /// version 2 stores each record's position in the record. Journals of versions 1 and 2, left by
    /// the versions before, are still replayed: version 1 without the position check, and both with
    /// their rows sorted into visits and bots at the replay (``sortsBots``).
    static let magic: [UInt8] = Array("VCJOURN3".utf8)
    static let magicWithPositions: [UInt8] = Array("VCJOURN2".utf8)
    static let magicWithoutPositions: [UInt8] = Array("VCJOURN1".utf8)
    /// Whether the records carry their positions (versions 2 and 3), to be checked when read.
    private let checksPositions: Bool
    /// Whether a row is always a visit, bots having been sorted out when they were recorded by this
    /// version's bot check: a version 3 journal whose header holds ``BotClassifier/version``. Rows
    /// sorted by an earlier check (which holds 0 there) are sorted again at the replay.
    public let sortsBots: Bool
    static let headerSize = 4096
    /// Header offsets: magic (8 bytes), ID (36 bytes of text), capacity (8), end (8), the bot check's
    /// version that sorted the rows (4).
    private static let idOffset = 8
    private static let capacityOffset = 48
    private static let endOffset = 56
    private static let botCheckOffset = 64
    /// The ring's bytes per `--buffer-limit` row: a record with a 512-byte user agent takes about 590.
    public static let bytesPerRow = 640

    /// The ring's size for a `--buffer-limit` of `rows`: the journal holds that many rows.
    public static func capacity(rows: Int) -> Int {
        let bytes = max(rows, 16) * bytesPerRow
        return (bytes + 4095) / 4096 * 4096
    }

    /// The journal files next to `database`, whatever their worker.
    public static func all(database: String) throws -> [String] {
        let url = URL(fileURLWithPath: database)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + ".journal-"
        return try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix(prefix) && !$0.hasSuffix(".rejected") }.sorted()
            .map { URL(fileURLWithPath: directory).appendingPathComponent($0).path }
    }

    /// The journals of worker slot `worker` next to `database`.
    static func all(database: String, worker: Int) throws -> [String] {
        let prefix = URL(fileURLWithPath: database).lastPathComponent + ".journal-\(worker)-"
        return try all(database: database).filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(prefix) }
    }

    /// How many journals of one worker slot may wait for their replay before the slot makes no more.
    ///
    /// A journal waits as long as the database cannot be written. A worker that crashes again and
    /// again during an outage would otherwise allocate a new journal (32 MiB by default) at every
    /// restart while none of the old ones can go: the disk next to the database would fill up. Using
    /// its own ended journal again instead would need that journal's progress from the database that
    /// is down, so the slot stops at this many, and its next workers serve without a journal
    /// (``CreateError/tooManyWaiting(worker:paths:)``, in the audit log) until the replays have caught up.
    public static let maxWaitingPerWorker = 4

    /// Why a new journal is not made.
    public enum CreateError: Error, CustomStringConvertible {
        /// The slot's earlier journals wait for the database: see ``maxWaitingPerWorker``.
        case tooManyWaiting(worker: Int, paths: [String])

        public var description: String {
            switch self {
            case .tooManyWaiting(let worker, let paths):
                return "worker \(worker) already has \(paths.count) journals of ended workers waiting to be written "
                    + "to the database (\(paths.joined(separator: ", "))): no new one is made until they are"
            }
        }
    }

    /// Makes a new journal for worker `worker` next to `database`, with its space allocated up front (a
    /// page of a sparse file that could not be had when first touched would be a SIGBUS), and locks it.
    ///
    /// The file is made under a name the directory scan (``all(database:)``) does not match, locked,
    /// allocated and given its header, and only then renamed to its journal name (the lock goes with
    /// the file). Made under its final name, another worker's replay could open and lock it in the
    /// moment before its own worker did, and find it empty: that worker would then run without a journal.
    ///
    /// Throws ``CreateError/tooManyWaiting(worker:paths:)`` when ``maxWaitingPerWorker`` journals of
    /// this worker's slot already wait next to the database.
    public static func create(database: String, worker: Int, capacity: Int) throws -> VisitJournal {
        let waiting = try all(database: database, worker: worker)
        guard waiting.count < maxWaitingPerWorker else { throw CreateError.tooManyWaiting(worker: worker, paths: waiting) }
        let id = UUID().uuidString.lowercased()
        let path = "\(database).journal-\(worker)-\(id)"
        var current = "\(database).creating-journal-\(worker)-\(id)"
        let descriptor = try systemCall("open", current) {
            open(current, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        do {
            try systemCall("flock", current) { flock(descriptor, LOCK_EX | LOCK_NB) }
            let size = headerSize + capacity
            try systemCallReturningError("posix_fallocate", current) { posix_fallocate(descriptor, 0, off_t(size)) }
            // The header goes in before the mapping, which reads the ID and the capacity from it.
            var header = [UInt8](repeating: 0, count: botCheckOffset + 4)
            header.replaceSubrange(0..<magic.count, with: magic)
            withUnsafeBytes(of: BotClassifier.version.littleEndian) { header.replaceSubrange(botCheckOffset..<botCheckOffset + 4, with: $0) }
            header.replaceSubrange(idOffset..<idOffset + 36, with: Array(id.utf8))
            withUnsafeBytes(of: UInt64(capacity).littleEndian) { header.replaceSubrange(capacityOffset..<capacityOffset + 8, with: $0) }
            let written = try systemCall("pwrite", current) { pwrite(descriptor, header, header.count, 0) }
            guard written == header.count else { throw SystemCallError(call: "pwrite", subject: current, errno: EIO) }
            let temporary = current
            try systemCall("rename", path) { rename(temporary, path) }
            current = path
            return try VisitJournal(path: path, descriptor: descriptor, size: size)
        } catch {
            // Ignored on purpose: the error that got here is the one to report.
            _ = unlink(current)
            close(descriptor)
            throw error
        }
    }

    /// Why a journal found on disk is not replayed.
    public enum OpenError: Error, CustomStringConvertible {
        /// Another live process holds it.
        case inUse
        /// Not there any more: another worker replayed and removed it after the directory was listed.
        case gone
        /// Not a file this service made: a symlink, another owner, permissions for others, a bad header.
        case untrusted(path: String, reason: String)

        public var description: String {
            switch self {
            case .inUse: return "the journal is in use by a live worker"
            case .gone: return "the journal was removed (replayed by another worker)"
            case .untrusted(let path, let reason):
                return "\(path) is not a journal this service made (\(reason)): left as it is, not replayed"
            }
        }
    }

    /// Opens an existing journal that no live process holds, for its replay; throws ``OpenError/inUse``
    /// when one does, ``OpenError/gone`` when it is not there any more, and
    /// ``OpenError/untrusted(path:reason:)`` when it is not a file this service made.
    public static func openOrphan(path: String) throws -> VisitJournal {
        let descriptor = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw openFailure(path: path, errno: errno) }
        do {
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                if errno == EWOULDBLOCK { throw OpenError.inUse }
                throw SystemCallError(call: "flock", subject: path, errno: errno)
            }
            var status = stat()
            try systemCall("fstat", path) { fstat(descriptor, &status) }
            // Removed by the worker that replayed it just before we got the lock.
            guard status.st_nlink > 0 else { throw OpenError.gone }
            if let reason = untrustedReason(status) { throw OpenError.untrusted(path: path, reason: reason) }
            guard Int(status.st_size) > headerSize else {
                throw OpenError.untrusted(path: path, reason: "\(status.st_size) bytes, shorter than a journal")
            }
            let journal = try VisitJournal(path: path, descriptor: descriptor, size: Int(status.st_size))
            let found = Array(UnsafeRawBufferPointer(start: journal.base, count: magic.count))
            guard found == magic || found == magicWithPositions || found == magicWithoutPositions,
                journal.capacity == Int(status.st_size) - headerSize, journal.capacity > 0
            else { throw OpenError.untrusted(path: path, reason: "no journal header") }
            return journal
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// What a failed `open` of a journal or spill file found on disk means. Workers list the directory
    /// and replay at the same time, so a file that vanished in between (`ENOENT`) was replayed by
    /// another one; a file this service's user may not open (`EACCES`, say one made by root in a manual
    /// run) is not one it made: it is reported, once, rather than failing every replay pass.
    static func openFailure(path: String, errno code: Int32) -> Error {
        switch code {
        case ENOENT: return OpenError.gone
        case ELOOP: return OpenError.untrusted(path: path, reason: "a symbolic link")
        case EACCES, EPERM: return OpenError.untrusted(path: path, reason: "this service's user may not open it")
        default: return SystemCallError(call: "open", subject: path, errno: code)
        }
    }

    /// `nil` for a regular file owned by this process's user without permissions for group or others,
    /// as this service makes its files; otherwise why not.
    static func untrustedReason(_ status: stat) -> String? {
        if status.st_mode & S_IFMT != S_IFREG { return "not a regular file" }
        if status.st_uid != geteuid() { return "owned by uid \(status.st_uid), not \(geteuid())" }
        if status.st_mode & 0o077 != 0 { return "mode \(String(status.st_mode & 0o777, radix: 8)), open to others" }
        return nil
    }

    private init(path: String, descriptor: Int32, size: Int) throws {
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), mapped != MAP_FAILED else {
            throw SystemCallError(call: "mmap", subject: path, errno: errno)
        }
        self.path = path
        self.descriptor = descriptor
        self.base = mapped
        self.mappedSize = size
        let stored = UInt64(littleEndian: mapped.loadUnaligned(fromByteOffset: Self.capacityOffset, as: UInt64.self))
        self.capacity = stored > 0 && stored <= UInt64(size - Self.headerSize) ? Int(stored) : size - Self.headerSize
        let idBytes = UnsafeRawBufferPointer(start: mapped + Self.idOffset, count: 36)
        self.id = String(decoding: idBytes, as: UTF8.self)
        let found = Array(UnsafeRawBufferPointer(start: mapped, count: Self.magic.count))
        self.checksPositions = found == Self.magic || found == Self.magicWithPositions
        let botCheck = UInt32(littleEndian: mapped.loadUnaligned(fromByteOffset: Self.botCheckOffset, as: UInt32.self))
        self.sortsBots = found == Self.magic && botCheck == BotClassifier.version
    }

    deinit {
        munmap(base, mappedSize)
        close(descriptor)
    }

    private var endPointer: UnsafeMutablePointer<Atomic<UInt64>> {
        (base + Self.endOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The position after the last whole record.
    public var end: UInt64 { endPointer.pointee.load(ordering: .acquiring) }

    private func publish(end: UInt64) {
        endPointer.pointee.store(end, ordering: .releasing)
    }

    /// Appends `record` when the ring has room beside the unwritten records from `written` on, and
    /// answers the new end; `nil` when it has not (the visit is then only in memory).
    func append(_ record: JournalRecord, written: UInt64) -> UInt64? {
        let start = end
        let length = record.encodedLength
        guard start - written + UInt64(length) <= UInt64(capacity) else { return nil }
        let offset = Int(start % UInt64(capacity))
        if offset + length <= capacity {
            // The usual case: straight into the mapped pages.
            record.encode(into: UnsafeMutableRawBufferPointer(start: base + Self.headerSize + offset, count: length), position: start)
        } else {
            // Across the ring's end: encoded aside, then copied in two parts.
            withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) { buffer in
                record.encode(into: buffer, position: start)
                copy(in: UnsafeRawBufferPointer(buffer), at: start)
            }
        }
        let newEnd = start + UInt64(length)
        publish(end: newEnd)
        return newEnd
    }

    /// The records from `position` to ``end``, with the position after each; stops at a record that
    /// does not decode (``Tail/damaged``).
    public func records(from position: UInt64) -> Tail {
        var tail = Tail()
        let end = self.end
        var position = position
        guard end >= position, end - position <= UInt64(capacity) else {
            tail.damaged = true
            return tail
        }
        while position < end {
            var lengthBytes: UInt32 = 0
            withUnsafeMutableBytes(of: &lengthBytes) { copy(out: $0, at: position) }
            let length = Int(UInt32(littleEndian: lengthBytes))
            guard length >= JournalRecord.headerLength, UInt64(length) <= end - position else {
                tail.damaged = true
                return tail
            }
            let record = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                copy(out: UnsafeMutableRawBufferPointer(buffer), at: position)
                count = length
            }
            let expected = checksPositions ? position : nil
            guard let decoded = record.withUnsafeBytes({ JournalRecord.decode($0, position: expected) }) else {
                tail.damaged = true
                return tail
            }
            position += UInt64(length)
            tail.records.append((decoded, position))
        }
        return tail
    }

    /// What ``records(from:)`` read.
    public struct Tail {
        public var records: [(record: JournalRecord, end: UInt64)] = []
        /// A record that does not decode: the file was damaged by something other than a process crash.
        public var damaged = false
    }

    /// Removes the file; its descriptor and lock go with this value.
    public func remove() throws {
        try systemCall("unlink", path) { unlink(path) }
    }

    private func copy(in bytes: UnsafeRawBufferPointer, at position: UInt64) {
        let offset = Int(position % UInt64(capacity))
        let first = min(bytes.count, capacity - offset)
        (base + Self.headerSize + offset).copyMemory(from: bytes.baseAddress!, byteCount: first)
        if first < bytes.count {
            (base + Self.headerSize).copyMemory(from: bytes.baseAddress! + first, byteCount: bytes.count - first)
        }
    }

    private func copy(out bytes: UnsafeMutableRawBufferPointer, at position: UInt64) {
        let offset = Int(position % UInt64(capacity))
        let first = min(bytes.count, capacity - offset)
        bytes.baseAddress!.copyMemory(from: base + Self.headerSize + offset, byteCount: first)
        if first < bytes.count {
            (bytes.baseAddress! + first).copyMemory(from: base + Self.headerSize, byteCount: bytes.count - first)
        }
    }
}
