import Foundation
import Logging

/// The writer's work besides writing batches: replaying what ended workers left, the day's keys,
/// checkpoints, and the audit log's entries for degradations seen on the request path.
extension VisitRecorder {
    /// Replays every journal that no live worker holds (its worker stopped, was killed or crashed) and
    /// every spill file from earlier versions. A stop cuts a replay short `stopWriteLimit` after it
    /// was asked for; what is left is replayed at the next start.
    ///
    /// A file that fails does not end the pass: the files after it are replayed all the same, and the
    /// pass counts as failed (with a back-off) only for the files that did fail, which it names.
    /// Answers what the writer does next.
    func replayEndedJournals() -> WriterStateMachine.Action {
        var failures: [String] = []
        do {
            for path in try VisitJournal.all(database: store.localFiles) where path != journal?.path {
                if pastStopDeadline() { break }
                do { try replayJournal(path) } catch { failures.append("\(path): \(error)") }
            }
            for file in try SpillFile.all(database: store.localFiles) {
                if pastStopDeadline() { break }
                do { try replaySpill(file) } catch { failures.append("\(file.path): \(error)") }
            }
        } catch {
            failures.append("listing the files next to \(store.localFiles): \(error)")
        }
        guard !failures.isEmpty else { return next(after: .replaySucceeded) }
        let failedAt = now()
        let action = next(after: .replayFailed(random: .random(in: 0..<1)), at: failedAt)
        let (passes, nextReplay) = state.withLock { ($0.writer.replayFailures, $0.writer.nextReplay) }
        audit(.init(
            event: .journalReplayFailed, worker: configuration.worker, visits: 0, error: failures.joined(separator: "; "),
            action: "replaying \(failures.count) ended worker's file(s) failed \(passes) time(s); the others were replayed; next try in \(Self.seconds(nextReplay - failedAt)) s"))
        return action
    }

    /// Whether a stop was asked for and its writing time is over: a replay under way ends here.
    private func pastStopDeadline() -> Bool {
        guard let deadline = state.withLock({ $0.writer.stopWriteDeadline }) else { return false }
        return now() >= deadline
    }

    private func replayJournal(_ path: String) throws {
        let outcome: JournalReplay.Outcome?
        do {
            outcome = try JournalReplay.replay(
                path: path, into: store, batchSize: configuration.batchSize, sorting: configuration.sorting,
                stopping: pastStopDeadline)
        } catch let error as VisitJournal.OpenError {
            reportUntrusted(path, error)
            return
        }
        guard let outcome, outcome.visits > 0 || outcome.alreadyWritten > 0 || outcome.damaged else { return }
        state.withLock { $0.statistics.replayedVisits += outcome.visits }
        var action = "\(outcome.batches) batch(es) of an ended worker's journal written"
        if outcome.alreadyWritten > 0 { action += "; \(outcome.alreadyWritten) already written by an earlier replay" }
        action += outcome.damaged
            ? "; a damaged record stopped the replay, the file is kept as \(path).rejected" : ", the journal removed"
        audit(.init(event: .journalReplayed, worker: configuration.worker, visits: outcome.visits, action: action),
              level: outcome.damaged ? .error : .notice)
    }

    private func replaySpill(_ file: SpillFile) throws {
        let replay: SpillFile.Replay?
        do {
            replay = try file.replay(into: store, sorting: configuration.sorting)
        } catch let error as VisitJournal.OpenError {
            reportUntrusted(file.path, error)
            return
        }
        guard let replay else { return }
        state.withLock { $0.statistics.replayedVisits += replay.visits }
        var action = "\(replay.batches) spilled batch(es) written, the file removed"
        if replay.alreadyReplayed > 0 { action += "; \(replay.alreadyReplayed) already written by an earlier replay" }
        if replay.damagedLines > 0 { action += "; \(replay.damagedLines) damaged line(s) moved to \(file.path).rejected" }
        audit(.init(event: .spillReplayed, worker: configuration.worker, visits: replay.visits, action: action),
              level: replay.damagedLines > 0 ? .error : .notice)
    }

    /// A file that looks like a journal or a spill file but is not one this service made: said once.
    private func reportUntrusted(_ path: String, _ error: VisitJournal.OpenError) {
        guard case .untrusted = error, reportedUntrusted.withLock({ $0.insert(path).inserted }) else { return }
        audit(.init(
            event: .journalRejected, worker: configuration.worker, visits: 0, error: "\(error)",
            action: "not replayed: check who made \(path); remove it, or give it to this service's user with mode 0600 to have it replayed"),
            level: .error)
    }

    func refreshDayKeys() -> WriterStateMachine.Event {
        do {
            let keys = try store.dayKeys()
            dayKeys.withLock { $0 = keys }
            return .dayKeysRefreshed
        } catch {
            logger.warning(
                "reading the day's visitor keys failed: the journal keeps visits without their visitor hash until it works",
                metadata: ["error": "\(error)"])
            return .dayKeysFailed
        }
    }

    func forgetOldKeys() -> WriterStateMachine.Event {
        do {
            try store.forgetOldKeys()
            return .oldKeysForgotten
        } catch {
            logger.warning("deleting old visitor keys failed, will try again", metadata: ["error": "\(error)"])
            return .oldKeysFailed
        }
    }

    func auditDegradations() {
        let degradations = state.withLock { state in
            defer { state.degradations = [] }
            return state.degradations
        }
        for degradation in degradations {
            let action: String
            switch degradation.event {
            case .rowsDropped:
                action = "the buffer holds \(configuration.bufferLimit) rows, its bound: visits are counted in the totals without their rows until writes catch up"
            case .journalFull:
                action = "the journal is full of unwritten visits: new visits are kept in memory only, and a crash would lose them, until writes catch up"
            case .journalHasRoom:
                action = "writes caught up: visits go into the journal again"
            default:
                action = "writes caught up: visits are kept with their rows again"
            }
            audit(.init(event: degradation.event, time: degradation.time, worker: configuration.worker,
                        visits: degradation.held, action: action))
        }
    }

    /// Answers `false` when a checkpoint was due and did not get to the end.
    func checkpointIfLarge() -> Bool {
        do {
            return try store.upkeep() != .heldUp
        } catch {
            logger.warning("store upkeep (SQLite: the WAL checkpoint) failed", metadata: ["error": "\(error)"])
            return false
        }
    }
}
