import Foundation

/// Writes the unwritten tail of a journal whose worker has ended (stopped, killed, crashed) into the
/// database, exactly once, and removes the journal.
///
/// The tail starts where `journal_progress` says the journal was written up to, and goes in batches
/// whose transactions move that position on: a replay killed half-way, and replayed again, writes
/// each visit once. The journal stays locked for the replay, so two workers never replay it at once.
public enum JournalReplay {
    /// What a replay did.
    public struct Outcome: Sendable, Equatable {
        public var batches = 0
        public var visits = 0
        /// Batches found already in the database (by a replay that ended before removing the file).
        public var alreadyWritten = 0
        /// The journal held a record that does not decode: it was damaged by something other than a
        /// process crash. What came before it is written; the file is renamed to `….rejected`.
        public var damaged = false
    }

    /// Replays the journal at `path`; `nil` when a live process holds it or it is gone (replayed by
    /// another worker since the directory was listed).
    /// - Parameters:
    ///   - sorting: `--count-bots`, for the rows of a journal an earlier version wrote, which its check may have sorted otherwise.
    ///   - stopping: asked between batches; a replay stops early (to be taken up again) when it answers `true`.
    public static func replay(
        path: String, into store: any CounterStore, batchSize: Int, sorting: VisitSorting, stopping: () -> Bool = { false }
    ) throws -> Outcome? {
        let journal: VisitJournal
        do {
            journal = try VisitJournal.openOrphan(path: path)
        } catch VisitJournal.OpenError.inUse {
            return nil
        } catch VisitJournal.OpenError.gone {
            return nil
        }
        let tail = batches(
            of: journal, from: try store.journalProgress(journal.id), batchSize: batchSize, sorting: sorting,
            calendar: store.calendar)
        var outcome = Outcome()
        for (index, batch) in tail.batches.enumerated() {
            if try store.write(batch) {
                outcome.batches += 1
                outcome.visits += batch.count
            } else {
                outcome.alreadyWritten += 1
            }
            if index < tail.batches.count - 1, stopping() { return outcome }
        }
        if tail.damaged {
            outcome.damaged = true
            try systemCall("rename", path) { rename(path, path + ".rejected") }
            return outcome
        }
        try journal.remove()
        // After the unlink: a progress row without its file is harmless, a file without its row would
        // be replayed from the start.
        try? store.forgetJournal(journal.id)
        return outcome
    }

    /// The records of `journal` from `position` on, up to `end` when one is given, in batches of at
    /// most `batchSize` records, each batch with its journal span. `damaged` when a record does not
    /// decode (the file was damaged, or the ring has reused that part) or the records stop short of `end`.
    static func batches(
        of journal: VisitJournal, from position: UInt64, upTo end: UInt64? = nil, batchSize: Int, sorting: VisitSorting,
        calendar: LocalCalendar = .utc
    ) -> (batches: [VisitBatch], damaged: Bool) {
        let tail = journal.records(from: position)
        var batches: [VisitBatch] = []
        var batch = VisitBatch()
        var records = 0
        var position = position
        for (record, recordEnd) in tail.records {
            if let end, recordEnd > end { break }
            switch record.kind {
            case .row where journal.sortsBots: batch.append(record.visit)
            case .row: batch.appendUnsorted(record.visit, sorting: sorting)
            case .withoutRow: batch.countWithoutRow(record.visit, in: calendar)
            case .botWithoutRow: batch.botsWithoutRows += 1
            case .ignored: batch.ignored += 1
            }
            batch.addJournal(JournalSpan(id: journal.id, start: position, end: recordEnd))
            position = recordEnd
            records += 1
            if records >= batchSize {
                batches.append(batch)
                batch = VisitBatch()
                records = 0
            }
        }
        if records > 0 { batches.append(batch) }
        // Up to `end`, what lies past it does not matter; without one, a damaged record anywhere does.
        return (batches, end.map { position != $0 } ?? tail.damaged)
    }
}
