import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where workers of earlier versions put the visits they could not write when they stopped: a file
/// next to the database, one per worker (`visitors.sqlite.spill-0.jsonl`), replayed into the database
/// and removed at the next start. This version leaves such visits in its ``VisitJournal`` instead and
/// only replays spill files it finds; ``append(_:id:worker:at:)`` stays to make them in tests.
///
/// Each spill is one JSON line with an ID of its own, appended with one `write` under a lock and then
/// `fsync`ed. A replay writes each line in one transaction that also records its ID, so a replay that
/// is cut short and run again counts nothing twice; the file is removed once every line is in.
public struct SpillFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// Worker `worker`'s spill file for the database at `database`.
    public init(database: String, worker: Int) {
        self.init(path: "\(database).spill-\(worker).jsonl")
    }

    /// Every spill file next to `database`, whichever worker wrote it.
    public static func all(database: String) throws -> [SpillFile] {
        let url = URL(fileURLWithPath: database)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + ".spill-"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".jsonl") }.sorted()
            .map { SpillFile(path: URL(fileURLWithPath: directory).appendingPathComponent($0).path) }
    }

    /// One spilled batch as it is stored.
    struct Record: Codable {
        struct Row: Codable {
            var ip: String?
            var userAgent: String
            var country: String
            var countryCode: String
            var timestamp: String
        }

        var id: String
        var worker: Int
        var spilledAt: String
        var visits: [Row]
        var countsWithoutRows: [String: Int]
        /// Absent from lines written before the recent windows.
        var minutesWithoutRows: [String: Int]?
        var botsWithoutRows: Int?

        private var spillDay: Int { UTCTimestamp.parse(spilledAt).map(UTCTimestamp.day) ?? UTCTimestamp.day(Date()) }

        /// The batch, its rows sorted into visits and bots (an earlier version's worker left that to the store).
        func batch(sorting: VisitSorting) -> VisitBatch {
            var batch = VisitBatch(
                // Two keys may name one day and country ("US" beside "<day> US", "01" beside "1"): added up,
                // where taking them as unique would trap on a file's content.
                countsWithoutRows: Dictionary(countsWithoutRows.compactMap { key, value in
                    // "day code"; a line written before the daily rollup has the code alone: its spill's day.
                    let parts = key.split(separator: " ")
                    if parts.count == 1 { return (DayCountry(day: spillDay, code: String(parts[0])), value) }
                    guard parts.count == 2, let day = Int(parts[0]) else { return nil }
                    return (DayCountry(day: day, code: String(parts[1])), value)
                }, uniquingKeysWith: +),
                minutesWithoutRows: Dictionary((minutesWithoutRows ?? [:]).compactMap { key, value in
                    Int(key).map { ($0, value) }
                }, uniquingKeysWith: +))
            batch.botsWithoutRows = botsWithoutRows ?? 0
            // Spill files come from versions that counted the index page only.
            for (key, visitors) in batch.countsWithoutRows {
                VisitBatch.add(DayKey(day: key.day, key: Visit.indexPath), visitors, to: &batch.pagesWithoutRows)
            }
            for row in visits {
                batch.appendUnsorted(
                    Visit(
                        trustedIP: row.ip, userAgent: row.userAgent, country: row.country, countryCode: row.countryCode,
                        time: UTCTimestamp.parse(row.timestamp) ?? Date(timeIntervalSince1970: 0)),
                    sorting: sorting)
            }
            return batch
        }
    }

    /// Appends `batch` as one line with the ID `id` and waits until it is on disk. A failed append
    /// leaves nothing behind, so it can be tried again with the same ID.
    public func append(_ batch: VisitBatch, id: String = UUID().uuidString, worker: Int, at time: Date = Date()) throws {
        let record = Record(
            id: id, worker: worker, spilledAt: UTCTimestamp.format(time, milliseconds: true),
            visits: batch.visits.map { visit in
                Record.Row(
                    ip: visit.ip, userAgent: visit.userAgent, country: visit.country, countryCode: visit.countryCode,
                    timestamp: UTCTimestamp.format(visit.time, milliseconds: true))
            },
            countsWithoutRows: Dictionary(uniqueKeysWithValues: batch.countsWithoutRows.map { ("\($0.key.day) \($0.key.code)", $0.value) }),
            minutesWithoutRows: Dictionary(uniqueKeysWithValues: batch.minutesWithoutRows.map { ("\($0.key)", $0.value) }),
            botsWithoutRows: batch.botsWithoutRows)
        var line = Array(try Self.encoder.encode(record))
        line.append(UInt8(ascii: "\n"))
        try LockedFile.withAppendLock(path) { descriptor, size in
            try LockedFile.appendLines(line, to: descriptor, size: size, path: path, sync: true)
        }
    }

    /// What a replay did.
    public struct Replay: Sendable, Equatable {
        /// Spilled batches written to the database now.
        public var batches = 0
        public var visits = 0
        /// Batches found already written by an earlier replay that stopped before removing the file.
        public var alreadyReplayed = 0
        /// A last line without its newline or that does not parse: a spill cut short by a crash. Its
        /// visits cannot be told; the line is kept in a `.rejected` file beside the database.
        public var damagedLines = 0
    }

    /// Writes every batch in the file into `store`, then removes the file; `nil` when there is no file.
    /// On a failed write the file stays, whole, for the next try. `sorting` is `--count-bots`'s.
    public func replay(into store: any CounterStore, sorting: VisitSorting) throws -> Replay? {
        try LockedFile.withReadLock(path) { descriptor in
            let contents = try FileDescriptor.readAll(descriptor, subject: path)
            var replay = Replay()
            var damaged: [ArraySlice<UInt8>] = []
            var lines = contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            if contents.last != UInt8(ascii: "\n"), let last = lines.popLast() { damaged.append(last) }
            for line in lines {
                guard let record = try? Self.decoder.decode(Record.self, from: Data(line)) else {
                    damaged.append(line)
                    continue
                }
                let batch = record.batch(sorting: sorting)
                if try store.write(batch, spillID: record.id) {
                    replay.batches += 1
                    replay.visits += batch.count
                } else {
                    replay.alreadyReplayed += 1
                }
            }
            if !damaged.isEmpty {
                replay.damagedLines = damaged.count
                let rejected = damaged.map { Array($0) + [UInt8(ascii: "\n")] }.joined()
                try LockedFile.withAppendLock(path + ".rejected") { descriptor, size in
                    try LockedFile.appendLines(Array(rejected), to: descriptor, size: size, path: path + ".rejected", sync: true)
                }
            }
            try systemCall("unlink", path) { unlink(path) }
            return replay
        }
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
