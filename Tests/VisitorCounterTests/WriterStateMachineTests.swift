import Testing

@testable import VisitorCounter

/// The writer's schedule, event by event, with made-up instants: no threads, no sleeps, no database.
struct WriterStateMachineTests {
    typealias Machine = WriterStateMachine
    let start = ContinuousClock.now
    static let retry = RetryPolicy(firstDelay: .seconds(1), maxDelay: .seconds(8))

    /// Replays every 5 s, or every hour where a test looks at something else.
    func machine(needsDayKeys: Bool = false, replayInterval: Duration = .seconds(5)) -> Machine {
        Machine(
            configuration: .init(
                retry: Self.retry, stopWriteLimit: .seconds(15), stopRetryLimit: .seconds(30), needsDayKeys: needsDayKeys,
                replayInterval: replayInterval),
            now: start)
    }

    /// A machine past its start-up work (day keys, replay, old keys), asked to write.
    func started(replayInterval: Duration = .seconds(3600)) -> Machine {
        var machine = machine(replayInterval: replayInterval)
        #expect(machine.handle(.tick, now: start) == .replay)
        #expect(machine.handle(.replaySucceeded, now: start) == .forgetOldKeys)
        #expect(machine.handle(.oldKeysForgotten, now: start) == .write(draining: false))
        return machine
    }

    @Test func theStartReplaysThenWritesAndWaitsForTheNextBatch() {
        var machine = machine(needsDayKeys: true)
        #expect(machine.handle(.tick, now: start) == .refreshDayKeys)
        #expect(machine.handle(.dayKeysRefreshed, now: start) == .replay)
        #expect(machine.handle(.replaySucceeded, now: start) == .forgetOldKeys)
        #expect(machine.handle(.oldKeysForgotten, now: start) == .write(draining: false))
        #expect(machine.handle(.nothingToWrite(nextDeadline: start + .seconds(2)), now: start) == .wait(until: start + .seconds(2)))
        #expect(machine.handle(.tick, now: start + .seconds(2)) == .write(draining: false))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(2)) == .checkpoint)
        #expect(machine.handle(.checkpointDone, now: start + .seconds(2)) == .write(draining: false))
    }

    @Test func failedWritesBackOffDoublingUpToTheCap() {
        var machine = started()
        var now = start
        // random 0: the jitter takes off the full half, so the waits are 0.5, 1, 2, 4 and (capped) 4 s.
        for expected in [500, 1000, 2000, 4000, 4000] as [Int64] {
            #expect(machine.handle(.writeFailed(random: 0), now: now) == .wait(until: now + .milliseconds(expected)))
            // A batch ready during the back-off does not cut it short.
            #expect(machine.handle(.tick, now: now + .milliseconds(100)) == .wait(until: now + .milliseconds(expected)))
            now = now + .milliseconds(expected)
            #expect(machine.handle(.tick, now: now) == .write(draining: false))
        }
        #expect(machine.consecutiveFailures == 5)
        #expect(machine.phase == .retrying(until: now, failures: 5))
        #expect(machine.handle(.writeSucceeded, now: now) == .checkpoint)
        #expect(machine.consecutiveFailures == 0)
        #expect(machine.nextRetry == nil)
        #expect(machine.phase == .running)
    }

    @Test func aReplayThatFailsIsRetriedOnItsOwnTimerWhileWritesGoOn() {
        var machine = machine()
        #expect(machine.handle(.tick, now: start) == .replay)
        // The replay fails: writing goes on at once, the replay comes back after its own back-off (0.5 s).
        #expect(machine.handle(.replayFailed(random: 0), now: start) == .forgetOldKeys)
        #expect(machine.handle(.oldKeysForgotten, now: start) == .write(draining: false))
        #expect(machine.handle(.writeSucceeded, now: start) == .checkpoint)
        #expect(machine.handle(.checkpointDone, now: start) == .write(draining: false))
        #expect(
            machine.handle(.nothingToWrite(nextDeadline: start + .seconds(2)), now: start)
                == .wait(until: start + .milliseconds(500)))
        #expect(machine.handle(.tick, now: start + .milliseconds(500)) == .replay)
        #expect(machine.handle(.replayFailed(random: 0), now: start + .milliseconds(500)) == .write(draining: false))
        #expect(machine.replayFailures == 2)
        // The second back-off is 1 s; then a replay that works is looked for again every interval.
        #expect(machine.handle(.tick, now: start + .milliseconds(1400)) == .write(draining: false))
        #expect(machine.handle(.tick, now: start + .milliseconds(1500)) == .replay)
        #expect(machine.handle(.replaySucceeded, now: start + .milliseconds(1500)) == .write(draining: false))
        #expect(machine.replayFailures == 0)
        #expect(machine.handle(.tick, now: start + .milliseconds(1500) + .seconds(5)) == .replay)
    }

    @Test func aReplayIsDueEvenWhileWritesBackOff() {
        var machine = started(replayInterval: .seconds(5))
        _ = machine.handle(.writeFailed(random: 0), now: start)
        _ = machine.handle(.writeFailed(random: 0), now: start + .seconds(1))
        // The retry is due at 2 s; the replay timer (5 s) is not held up by the back-off.
        #expect(machine.handle(.tick, now: start + .milliseconds(1500)) == .wait(until: start + .seconds(2)))
        _ = machine.handle(.writeFailed(random: 0), now: start + .seconds(2))
        _ = machine.handle(.writeFailed(random: 0), now: start + .seconds(4))
        #expect(machine.nextRetry == start + .seconds(8))
        #expect(machine.handle(.tick, now: start + .seconds(5)) == .replay)
    }

    @Test func aStopDrainsAndFinishesWhenNothingIsLeft() {
        var machine = started()
        _ = machine.handle(.writeFailed(random: 0.5), now: start)
        // The stop writes at once, whatever back-off was set, and takes the partly filled batch too.
        machine.stop(now: start + .milliseconds(10))
        #expect(machine.nextRetry == nil)
        #expect(machine.consecutiveFailures == 1)
        #expect(machine.handle(.tick, now: start + .milliseconds(10)) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(1)) == .write(draining: true))
        // Then a last replay of journals that ended workers left, and the end.
        #expect(machine.handle(.nothingToWrite(nextDeadline: start), now: start + .seconds(1)) == .replay)
        #expect(machine.handle(.replayFailed(random: 0), now: start + .seconds(2)) == .write(draining: true))
        #expect(machine.handle(.nothingToWrite(nextDeadline: start), now: start + .seconds(2)) == .finish(.allWritten))
    }

    @Test func aStopEndsAtItsDeadlineAndLeavesTheRestInTheJournal() {
        var machine = started()
        machine.stop(now: start)
        #expect(machine.handle(.tick, now: start) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(14)) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(15)) == .finish(.stopTimedOut))
    }

    @Test func visitsInNoJournalAreWrittenPastTheStopsWriteDeadline() {
        var machine = started()
        machine.stop(now: start)
        #expect(machine.handle(.tick, now: start) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(20), unjournaledHeld: 100) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(30), unjournaledHeld: 100) == .finish(.gaveUp))
    }

    @Test func aWriteThatFailsAtTheStopLeavesJournaledVisitsForTheNextStart() {
        var machine = started()
        machine.stop(now: start)
        #expect(machine.handle(.writeFailed(random: 0.5), now: start + .seconds(5)) == .finish(.leftInJournal))
    }

    @Test func visitsInNoJournalAreTriedUntilTheRetryLimitThenReportedLost() {
        var machine = started()
        machine.stop(now: start)
        var now = start
        var tries = 0
        while true {
            let action = machine.handle(.writeFailed(random: 0), now: now, unjournaledHeld: 7)
            if action == .finish(.gaveUp) { break }
            guard case .wait(let until) = action else {
                Issue.record("expected a wait, got \(action)")
                return
            }
            #expect(until <= start + .seconds(30))
            tries += 1
            // The stop's write deadline (15 s) does not end the retries of visits that would be lost.
            now = until
            if now < start + .seconds(30) {
                #expect(machine.handle(.tick, now: now, unjournaledHeld: 7) == .write(draining: true))
            }
        }
        #expect(now >= start + .seconds(30))
        #expect(tries > 3)
    }

    @Test func aStopAskedForDuringAnActionIsTakenWithItsOutcome() {
        var machine = started()
        // The stop is asked for while a write runs; the write's outcome comes after, and is the stop's.
        machine.stop(now: start + .seconds(1))
        #expect(machine.stopWriteDeadline == start + .seconds(16))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(2)) == .write(draining: true))
        // Asking again moves no deadline.
        machine.stop(now: start + .seconds(10))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(16)) == .finish(.stopTimedOut))
    }

    @Test func aStopKeepsCountingFailuresForTheBackOff() {
        var machine = started()
        _ = machine.handle(.writeFailed(random: 0), now: start)
        _ = machine.handle(.writeFailed(random: 0), now: start + .milliseconds(500))
        machine.stop(now: start + .seconds(1))
        #expect(
            machine.phase
                == .stopping(.init(since: start + .seconds(1), failures: 2, retryAt: nil, finalReplayDone: false)))
        // The third failure in a row waits 2 s (random 0), as it would have without the stop.
        #expect(
            machine.handle(.writeFailed(random: 0), now: start + .seconds(1), unjournaledHeld: 1)
                == .wait(until: start + .seconds(3)))
        #expect(machine.nextRetry == start + .seconds(3))
        // A wake before then waits on.
        #expect(machine.handle(.tick, now: start + .seconds(2), unjournaledHeld: 1) == .wait(until: start + .seconds(3)))
        #expect(machine.handle(.tick, now: start + .seconds(3), unjournaledHeld: 1) == .write(draining: true))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(3)) == .write(draining: true))
        #expect(machine.consecutiveFailures == 0)
    }

    @Test func aCheckpointHeldUpByReadersPausesCheckpoints() {
        var machine = started()
        #expect(machine.handle(.writeSucceeded, now: start) == .checkpoint)
        #expect(machine.handle(.checkpointHeldUp, now: start) == .write(draining: false))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(1)) == .write(draining: false))
        #expect(machine.handle(.writeSucceeded, now: start + .seconds(31)) == .checkpoint)
    }

    @Test func oldKeysThatCannotBeDeletedAreTriedAgainAMinuteLater() {
        var machine = machine()
        _ = machine.handle(.tick, now: start)
        #expect(machine.handle(.replaySucceeded, now: start) == .forgetOldKeys)
        #expect(machine.handle(.oldKeysFailed, now: start) == .write(draining: false))
        #expect(machine.handle(.tick, now: start + .seconds(59)) == .replay)
        #expect(machine.handle(.replaySucceeded, now: start + .seconds(59)) == .write(draining: false))
        #expect(machine.handle(.tick, now: start + .seconds(60)) == .forgetOldKeys)
    }
}
