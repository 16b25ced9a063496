import Foundation
import Testing

@testable import VisitorCounter

struct VisitBufferTests {
    let start = ContinuousClock.now

    func visit(_ code: String, at time: Date = Date()) -> Visit {
        Visit(trustedIP: "192.0.2.1", userAgent: "Mozilla/5.0 (X11; Linux x86_64) test", country: code, countryCode: code, time: time)
    }

    @Test func aFullBatchIsReadyAtOnce() {
        var buffer = VisitBuffer(batchSize: 3, flushInterval: .seconds(60), sorting: .standard, now: start)
        #expect(buffer.append(visit("US"), now: start) == .none)
        #expect(buffer.append(visit("GB"), now: start) == .none)
        #expect(buffer.takeBatch(now: start) == nil)
        #expect(buffer.append(visit("US"), now: start) == .batchReady)
        let batch = buffer.takeBatch(now: start)
        #expect(batch?.count == 3)
        #expect(batch?.countryCounts == ["US": 2, "GB": 1])
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 0)
        #expect(buffer.rowsHeld == 0)
    }

    @Test func aPartBatchIsDueWhenTheIntervalHasPassed() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), sorting: .standard, now: start)
        _ = buffer.append(visit("DE"), now: start)
        #expect(buffer.takeBatch(now: start + .seconds(9)) == nil)
        #expect(buffer.takeBatch(now: start + .seconds(10))?.visits.map(\.countryCode) == ["DE"])
        buffer.batchWritten()
        #expect(buffer.nextDeadline == start + .seconds(20))
    }

    @Test func anEmptyIntervalRestartsTheTimer() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), sorting: .standard, now: start)
        #expect(buffer.takeBatch(now: start + .seconds(15)) == nil)
        _ = buffer.append(visit("FR"), now: start + .seconds(16))
        #expect(buffer.takeBatch(now: start + .seconds(16)) == nil)
        #expect(buffer.takeBatch(now: start + .seconds(25)) != nil)
    }

    @Test func drainingTakesThePartBatchAtOnce() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), sorting: .standard, now: start)
        #expect(buffer.takeBatch(now: start, draining: true) == nil)
        for code in ["US", "GB", "US"] { _ = buffer.append(visit(code), now: start) }
        #expect(buffer.takeBatch(now: start, draining: true)?.count == 3)
        buffer.batchWritten()
        #expect(buffer.takeBatch(now: start, draining: true) == nil)
    }

    @Test func aFailedBatchComesBackFirstAndWaitingBatchesMergeUpToTheBatchSize() {
        // Batches closed while writes fail are merged as they close; the writer then takes them one
        // at a time here (largest batch = batch size), so each one is seen as it was closed.
        var buffer = VisitBuffer(batchSize: 4, flushInterval: .seconds(1), largestBatch: 4, sorting: .standard, now: start)
        for code in ["A1", "A2", "A3", "A4"] { _ = buffer.append(visit(code), now: start) }
        let first = buffer.takeBatch(now: start)
        buffer.batchFailed()
        // While the writer waits, three part batches close: the first two merge (2 + 2 rows), the third
        // would make 5 and starts a batch of its own.
        var now = start
        for round in 1...3 {
            now += .seconds(1)
            for index in 0..<2 { _ = buffer.append(visit("R\(round)\(index)"), now: now) }
            #expect(buffer.takeBatch(now: now + .seconds(1)) == first)
            buffer.batchFailed()
        }
        #expect(buffer.takeBatch(now: now) == first)
        buffer.batchWritten()
        #expect(buffer.takeBatch(now: now)?.visits.map(\.countryCode) == ["R10", "R11", "R20", "R21"])
        buffer.batchWritten()
        #expect(buffer.takeBatch(now: now)?.visits.map(\.countryCode) == ["R30", "R31"])
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 0)
    }

    /// A writer that fell behind takes the waiting batches together, up to the largest batch, with
    /// their journal spans joined.
    @Test func aBacklogIsTakenInLargerBatchesWithItsJournalSpansJoined() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(60), largestBatch: 5, sorting: .standard, now: start)
        #expect(VisitBuffer(batchSize: 1_000, flushInterval: .seconds(1), sorting: .standard, now: start).largestBatch == 10_000)
        for position in UInt64(0)..<7 {
            _ = buffer.append(visit("C\(position)"), now: start, journal: JournalSpan(id: "j", start: position, end: position + 1))
        }
        // Three closed batches of 2 and one visit filling: 2 + 2 fit in 5 rows, 2 more would not.
        let first = buffer.takeBatches(now: start)
        #expect(first.map(\.visits.count) == [2, 2])
        let joined = VisitBatch(joining: first)
        #expect(joined?.visits.map(\.countryCode) == ["C0", "C1", "C2", "C3"])
        #expect(joined?.journal == JournalSpan(id: "j", start: 0, end: 4))
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 3)
        let second = buffer.takeBatch(now: start, draining: true)
        #expect(second?.visits.map(\.countryCode) == ["C4", "C5", "C6"])
        #expect(second?.journal == JournalSpan(id: "j", start: 4, end: 7))
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 0)
        #expect(buffer.rowsHeld == 0)
    }

    /// Batches tried together are retried together and as they were, even when a batch closed since
    /// would fit beside them: the retry must carry the same journal span.
    @Test func batchesTriedTogetherAreRetriedAsTheyWere() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(60), largestBatch: 5, sorting: .standard, now: start)
        for position in UInt64(0)..<4 {
            _ = buffer.append(visit("C\(position)"), now: start, journal: JournalSpan(id: "j", start: position, end: position + 1))
        }
        let tried = buffer.takeBatch(now: start)
        #expect(tried?.journal == JournalSpan(id: "j", start: 0, end: 4))
        buffer.batchFailed()
        _ = buffer.append(visit("C4"), now: start, journal: JournalSpan(id: "j", start: 4, end: 5))
        // The interval has passed: C4 closes as a batch of its own, 1 row that would fit in 5.
        #expect(buffer.takeBatch(now: start + .seconds(60)) == tried)
        buffer.batchFailed()
        #expect(buffer.takeBatch(now: start + .seconds(61)) == tried)
        buffer.batchWritten()
        #expect(buffer.takeBatch(now: start + .seconds(61))?.journal == JournalSpan(id: "j", start: 4, end: 5))
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 0)
    }

    /// A write whose answer was lost (a failover, a dropped connection) may have committed: its retry
    /// must carry the same journal span, which the store then finds written, so nothing joins it.
    @Test func aTriedBatchIsRetriedAsItWasWithItsJournalSpan() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(1), sorting: .standard, now: start)
        for position in UInt64(0)..<3 {
            _ = buffer.append(visit("US"), now: start, journal: JournalSpan(id: "j", start: position, end: position + 1))
        }
        let tried = buffer.takeBatch(now: start + .seconds(1))
        #expect(tried?.journal == JournalSpan(id: "j", start: 0, end: 3))
        buffer.batchFailed()
        for position in UInt64(3)..<5 {
            _ = buffer.append(visit("GB"), now: start, journal: JournalSpan(id: "j", start: position, end: position + 1))
        }
        #expect(buffer.takeBatch(now: start + .seconds(2)) == tried)
        buffer.batchFailed()
        #expect(buffer.takeBatch(now: start + .seconds(3)) == tried)
        buffer.batchWritten()
        let next = buffer.takeBatch(now: start + .seconds(3))
        #expect(next?.journal == JournalSpan(id: "j", start: 3, end: 5))
        #expect(next?.countryCounts == ["GB": 2])
        buffer.batchWritten()
        #expect(buffer.visitsHeld == 0)
    }

    @Test func pastTheRowLimitVisitsAreCountedWithoutRows() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(1), rowLimit: 4, sorting: .standard, now: start)
        var actions: [VisitBuffer.Action] = []
        for index in 0..<10 { actions.append(buffer.append(visit(index % 2 == 0 ? "US" : "GB"), now: start)) }
        #expect(actions == [.none, .batchReady, .none, .batchReady, .startedCountingWithoutRows, .none, .none, .none, .none, .none])
        #expect(buffer.rowsHeld == 4)
        #expect(buffer.visitsHeld == 10)

        // The writer gets through: the two waiting batches of two rows at once, then one of counts only.
        var written = VisitBatch()
        let batch = buffer.takeBatch(now: start)
        #expect(batch?.visits.count == 4)
        written.merge(batch!)
        buffer.batchWritten()
        #expect(buffer.append(visit("US"), now: start) == .resumedKeepingRows)
        let rest = buffer.takeBatch(now: start + .seconds(1))
        #expect(rest?.visits.count == 1)
        #expect(rest?.visitsWithoutRows == 6)
        written.merge(rest!)
        buffer.batchWritten()
        #expect(written.count == 11)
        #expect(written.countryCounts == ["US": 6, "GB": 5])
        #expect(written.visitsWithoutRows == 6)
        #expect(buffer.visitsHeld == 0)
        #expect(buffer.rowsHeld == 0)
    }

    @Test func theOldestVisitHeldIsTracked() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(10), sorting: .standard, now: start)
        let early = Date(timeIntervalSince1970: 1000)
        #expect(buffer.oldestVisit == nil)
        _ = buffer.append(visit("US", at: early), now: start)
        _ = buffer.append(visit("US", at: early + 5), now: start)
        _ = buffer.append(visit("US", at: early + 9), now: start)
        #expect(buffer.oldestVisit == early)
        _ = buffer.takeBatch(now: start)
        #expect(buffer.oldestVisit == early)
        buffer.batchWritten()
        #expect(buffer.oldestVisit == early + 9)
    }

    @Test func takeAllEmptiesTheBufferIntoOneBatch() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(10), rowLimit: 2, sorting: .standard, now: start)
        for code in ["US", "GB", "US", "XX"] { _ = buffer.append(visit(code), now: start) }
        let all = buffer.takeAll()
        #expect(all?.visits.count == 2)
        #expect(all?.visitsWithoutRows == 2)
        #expect(all?.countryCounts == ["US": 2, "GB": 1, "XX": 1])
        #expect(buffer.takeAll() == nil)
        #expect(buffer.visitsHeld == 0)
    }

    /// A bot's request is sorted out when it comes, with room for rows or not: the stores write every
    /// row as a visit and decide nothing.
    @Test(arguments: [false, true]) func botsAreSortedOutWhenTheyCome(countsBots: Bool) {
        var buffer = VisitBuffer(batchSize: 10, flushInterval: .seconds(1), sorting: VisitSorting(countsBots: countsBots), now: start)
        let bot = Visit(trustedIP: nil, userAgent: "curl/8.5.0", country: "US", countryCode: "US", time: Date())
        #expect(buffer.kind(of: bot) == (countsBots ? .row : .botWithoutRow))
        _ = buffer.append(bot, now: start)
        _ = buffer.append(visit("GB"), now: start)
        let all = buffer.takeAll()
        #expect(all?.visits.map(\.countryCode) == (countsBots ? ["US", "GB"] : ["GB"]))
        #expect(all?.botsWithoutRows == (countsBots ? 0 : 1))
        #expect(all?.count == 2)
        #expect(all?.oldestVisit != nil)
    }

    @Test func atTheBoundBotsAreCountedAsBotsNotVisitors() {
        var buffer = VisitBuffer(batchSize: 10, flushInterval: .seconds(1), rowLimit: 1, sorting: .standard, now: start)
        _ = buffer.append(visit("US"), now: start)
        _ = buffer.append(Visit(trustedIP: nil, userAgent: "curl/8.5.0", country: "US", countryCode: "US", time: Date()), now: start)
        _ = buffer.append(visit("GB"), now: start)
        let all = buffer.takeAll()
        #expect(all?.botsWithoutRows == 1)
        #expect(all?.visitsWithoutRows == 1)
        #expect(all?.countryCounts == ["US": 1, "GB": 1])
        #expect(all?.count == 3)
    }

}

struct RetryPolicyTests {
    @Test func delaysDoubleUpToTheCapWithJitterInTheUpperHalf() {
        let policy = RetryPolicy(firstDelay: .milliseconds(500), maxDelay: .seconds(30))
        #expect(policy.delay(afterFailures: 1, random: 0) == .milliseconds(250))
        #expect(policy.delay(afterFailures: 1, random: 0.999_999) < .milliseconds(500))
        #expect(policy.delay(afterFailures: 2, random: 0) == .milliseconds(500))
        #expect(policy.delay(afterFailures: 4, random: 0.5) == .seconds(3))
        #expect(policy.delay(afterFailures: 8, random: 0) == .seconds(15))
        #expect(policy.delay(afterFailures: 1000, random: 0.999_999) <= .seconds(30))
    }
}
