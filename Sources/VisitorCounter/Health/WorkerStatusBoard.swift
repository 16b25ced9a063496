import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What one worker tells the others about itself: who it is, since when, and its writer's figures.
public struct WorkerStatus: Sendable, Equatable {
    public var pid: Int32 = 0
    public var startedAt: Date?
    public var writer = VisitRecorder.Statistics()

    public init(pid: Int32 = 0, startedAt: Date? = nil, writer: VisitRecorder.Statistics = .init()) {
        self.pid = pid
        self.startedAt = startedAt
        self.writer = writer
    }
}

/// Memory shared by the workers of one `serve`, one slot per worker, where each publishes its
/// ``WorkerStatus`` and from which any worker answers the health and metrics routes for all of them.
///
/// The supervisor makes it (a POSIX shared memory object, unlinked at once, so only the descriptor
/// names it) and hands it to each worker as a descriptor; no file is left behind and nothing but the
/// workers can reach it. Every value is a 64-bit atomic: a reader may see one worker's figures from
/// two consecutive publishes, never a torn number.
///
/// `@unchecked Sendable`: the mapping is only reached through atomics, and it lives as long as the value.
public final class WorkerStatusBoard: @unchecked Sendable {
    public let descriptor: Int32
    public let workers: Int
    private let values: UnsafeMutablePointer<Atomic<Int64>>

    static let fieldsPerSlot = 64

    /// Makes a board for `workers` workers in ``SharedMemory``; the supervisor hands its descriptor to each worker.
    public static func create(workers: Int) throws -> WorkerStatusBoard {
        let size = workers * fieldsPerSlot * MemoryLayout<Int64>.stride
        let descriptor = try SharedMemory.create("status-board", contents: [UInt8](repeating: 0, count: size))
        do {
            return try WorkerStatusBoard(descriptor: descriptor)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// Maps the board behind `descriptor`, made by ``create(workers:)`` in the supervisor.
    public init(descriptor: Int32) throws {
        var status = stat()
        try systemCall("fstat", "shared memory") { fstat(descriptor, &status) }
        let size = Int(status.st_size)
        guard size > 0, size % (Self.fieldsPerSlot * MemoryLayout<Int64>.stride) == 0 else {
            throw SystemCallError(call: "fstat", subject: "shared memory of \(size) bytes", errno: EINVAL)
        }
        guard let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), mapping != MAP_FAILED else {
            throw SystemCallError(call: "mmap", subject: "shared memory", errno: errno)
        }
        self.descriptor = descriptor
        self.workers = size / (Self.fieldsPerSlot * MemoryLayout<Int64>.stride)
        self.values = mapping.bindMemory(to: Atomic<Int64>.self, capacity: size / MemoryLayout<Int64>.stride)
    }

    /// Publishes `status` in slot `index`.
    public func publish(_ status: WorkerStatus, at index: Int) {
        guard index >= 0, index < workers else { return }
        let slot = values + index * Self.fieldsPerSlot
        for (offset, value) in status.fields.enumerated() {
            slot[offset].store(value, ordering: .relaxed)
        }
    }

    /// Empties slot `index`: the supervisor does this when a worker has exited.
    public func clear(_ index: Int) {
        publish(WorkerStatus(), at: index)
        guard index >= 0, index < workers else { return }
        values[index * Self.fieldsPerSlot + Self.heartbeatField].store(0, ordering: .relaxed)
    }

    /// The last field of a slot: when its worker last showed it can take requests (``MonotonicTime``).
    static let heartbeatField = fieldsPerSlot - 1

    /// Notes that the worker in slot `index` can take requests now.
    public func beat(at index: Int) {
        guard index >= 0, index < workers else { return }
        values[index * Self.fieldsPerSlot + Self.heartbeatField].store(MonotonicTime.now(), ordering: .relaxed)
    }

    /// When the worker in slot `index` last could take requests (``MonotonicTime``); `nil` before its first beat.
    public func lastBeat(at index: Int) -> Int64? {
        guard index >= 0, index < workers else { return nil }
        let beat = values[index * Self.fieldsPerSlot + Self.heartbeatField].load(ordering: .relaxed)
        return beat == 0 ? nil : beat
    }

    /// Every worker's last published status, by slot; `nil` for a slot no worker holds.
    public func statuses() -> [WorkerStatus?] {
        (0..<workers).map { index in
            let slot = values + index * Self.fieldsPerSlot
            let fields = (0..<WorkerStatus.fieldCount).map { slot[$0].load(ordering: .relaxed) }
            let status = WorkerStatus(fields: fields)
            return status.pid == 0 ? nil : status
        }
    }
}

extension WorkerStatus {
    /// The values in slot order; the order is private to one build, as workers never outlive their `serve`.
    var fields: [Int64] {
        var fields: [Int64] = [
            Int64(pid), Self.milliseconds(startedAt), Self.milliseconds(writer.lastPass),
            Int64(writer.visitsRecorded), Int64(writer.visitsWritten), Int64(writer.batchesWritten),
            Int64(writer.failedWrites), Int64(writer.consecutiveFailures), Int64(writer.visitsWithoutRows),
            Int64(writer.spilledVisits), Int64(writer.replayedVisits), Int64(writer.bufferedVisits),
            Int64(writer.bufferedRows), Self.milliseconds(writer.oldestBufferedVisit), Self.milliseconds(writer.lastWrite),
            Int64(writer.writeLatency.sumMicroseconds),
        ]
        fields += writer.writeLatency.counts.map(Int64.init)
        return fields
    }

    static var fieldCount: Int { 16 + LatencyHistogram.bounds.count + 1 }

    init(fields: [Int64]) {
        var writer = VisitRecorder.Statistics()
        writer.visitsRecorded = Int(fields[3])
        writer.visitsWritten = Int(fields[4])
        writer.batchesWritten = Int(fields[5])
        writer.failedWrites = Int(fields[6])
        writer.consecutiveFailures = Int(fields[7])
        writer.visitsWithoutRows = Int(fields[8])
        writer.spilledVisits = Int(fields[9])
        writer.replayedVisits = Int(fields[10])
        writer.bufferedVisits = Int(fields[11])
        writer.bufferedRows = Int(fields[12])
        writer.oldestBufferedVisit = Self.date(fields[13])
        writer.lastWrite = Self.date(fields[14])
        writer.lastPass = Self.date(fields[2])
        writer.writeLatency.sumMicroseconds = Int(fields[15])
        writer.writeLatency.counts = fields[16..<Self.fieldCount].map { Int($0) }
        self.init(pid: Int32(fields[0]), startedAt: Self.date(fields[1]), writer: writer)
    }

    private static func milliseconds(_ date: Date?) -> Int64 {
        date.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? 0
    }

    private static func date(_ milliseconds: Int64) -> Date? {
        milliseconds == 0 ? nil : Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
