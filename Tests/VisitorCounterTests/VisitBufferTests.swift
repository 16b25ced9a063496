import Foundation
import Testing

@testable import VisitorCounter

struct VisitBufferTests {
    let start = ContinuousClock.now

    func visit(_ code: String) -> Visit {
        Visit(trustedIP: "192.0.2.1", userAgent: "test", country: code, countryCode: code, time: Date())
    }

    @Test func flushesWhenFull() {
        var buffer = VisitBuffer(batchSize: 3, flushInterval: .seconds(60), now: start)
        #expect(buffer.append(visit("US"), now: start) == .none)
        #expect(buffer.append(visit("GB"), now: start) == .none)
        guard case .flush(let batch) = buffer.append(visit("US"), now: start) else {
            Issue.record("a full buffer did not flush")
            return
        }
        #expect(batch.count == 3)
        #expect(buffer.count == 0)
        #expect(buffer.append(visit("US"), now: start) == .none)
    }

    @Test func flushesWhenTheIntervalHasPassed() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), now: start)
        _ = buffer.append(visit("DE"), now: start)
        #expect(buffer.tick(now: start + .seconds(9)) == .none)
        guard case .flush(let batch) = buffer.tick(now: start + .seconds(10)) else {
            Issue.record("the interval passed without a flush")
            return
        }
        #expect(batch.visits.map(\.countryCode) == ["DE"])
        #expect(buffer.nextDeadline == start + .seconds(20))
    }

    @Test func anEmptyIntervalRestartsTheTimer() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), now: start)
        #expect(buffer.tick(now: start + .seconds(15)) == .none)
        _ = buffer.append(visit("FR"), now: start + .seconds(16))
        #expect(buffer.tick(now: start + .seconds(16)) == .none)
        #expect(buffer.tick(now: start + .seconds(25)) != .none)
    }

    @Test func aSizeFlushRestartsTheTimer() {
        var buffer = VisitBuffer(batchSize: 2, flushInterval: .seconds(10), now: start)
        _ = buffer.append(visit("US"), now: start + .seconds(8))
        _ = buffer.append(visit("US"), now: start + .seconds(8))
        _ = buffer.append(visit("US"), now: start + .seconds(9))
        #expect(buffer.tick(now: start + .seconds(10)) == .none)
        #expect(buffer.tick(now: start + .seconds(18)) != .none)
    }

    @Test func drainsEverythingOnStop() {
        var buffer = VisitBuffer(batchSize: 100, flushInterval: .seconds(10), now: start)
        #expect(buffer.drain() == nil)
        for code in ["US", "GB", "US"] { _ = buffer.append(visit(code), now: start) }
        let batch = buffer.drain()
        #expect(batch?.count == 3)
        #expect(buffer.count == 0)
        #expect(buffer.drain() == nil)
    }

    @Test func aggregatesCountriesAsItGoes() {
        var buffer = VisitBuffer(batchSize: 6, flushInterval: .seconds(10), now: start)
        var result: VisitBuffer.Action = .none
        for code in ["US", "GB", "US", "XX", "US", "GB"] { result = buffer.append(visit(code), now: start) }
        guard case .flush(let batch) = result else {
            Issue.record("no flush at batch size")
            return
        }
        #expect(batch.countryCounts == ["US": 3, "GB": 2, "XX": 1])
        #expect(batch == VisitBatch(counting: batch.visits))
    }
}
