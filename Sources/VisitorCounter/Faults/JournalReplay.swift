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
    ///   - countsBots: `--count-bots`, for the rows of a journal an earlier version wrote, which may be bots'.
    ///   - stopping: asked between batches; a replay stops early (to be taken up again) when it answers `true`.
    public static func replay(
        path: String, into store: any CounterStore, batchSize: Int, countsBots: Bool = false, stopping: () -> Bool = { false }
    ) throws -> Outcome? {
        let journal: VisitJournal
        do {
            journal = try VisitJournal.openOrphan(path: path)
        } catch VisitJournal.OpenError.inUse {
            return nil
        } catch VisitJournal.OpenError.gone {
            return nil
        }
        var position = try store.journalProgress(journal.id)
        let tail = journal.records(from: position)
        var outcome = Outcome()
        var batch = VisitBatch()
        var records = 0
        func flush() throws {
            guard records > 0 else { return }
            if try store.write(batch) {
                outcome.batches += 1
                outcome.visits += batch.count
            } else {
                outcome.alreadyWritten += 1
            }
            batch = VisitBatch()
            records = 0
        }
        for (record, end) in tail.records {
            switch record.kind {
            case .row where journal.sortsBots: batch.append(record.visit)
            case .row: batch.appendUnsorted(record.visit, countsBots: countsBots)
            case .withoutRow: batch.countWithoutRow(record.visit)
            case .botWithoutRow: batch.botsWithoutRows += 1
            }
            batch.addJournal(JournalSpan(id: journal.id, start: position, end: end))
            position = end
            records += 1
            if records >= batchSize {
                try flush()
                if stopping() { return outcome }
            }
        }
        try flush()
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
}
