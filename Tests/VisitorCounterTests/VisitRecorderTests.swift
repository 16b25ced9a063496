import Foundation
import Logging
import Testing

@testable import VisitorCounter

struct VisitRecorderTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    @Test func stopWritesEverythingBufferedBeforeItReturns() throws {
        let store = try VisitorStore(path: directory.path("stop.sqlite"))
        // Neither the size nor the interval would ever flush: only stop() can.
        let recorder = VisitRecorder(
            store: store, batchSize: 1_000_000, flushInterval: .seconds(3600), logger: Logger(label: "test"))
        recorder.start()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for _ in 0..<500 {
                recorder.record(
                    Visit(ip: "192.0.2.\(thread)", userAgent: Array("t".utf8), countryCode: thread % 2 == 0 ? "US" : "GB",
                          countryName: nil, time: Date()))
            }
        }
        #expect(try store.stats().totalVisitors == 0)
        recorder.stop()
        #expect(try store.stats() .countries == ["US": 2000, "GB": 2000])
        #expect(try store.visitorRowCount() == 4000)
        #expect(recorder.statistics.visitsWritten == 4000)
        #expect(recorder.pendingVisits == 0)
    }

    @Test func fullBatchesAreWrittenWithoutAStop() async throws {
        let store = try VisitorStore(path: directory.path("size.sqlite"))
        let recorder = VisitRecorder(
            store: store, batchSize: 10, flushInterval: .seconds(3600), logger: Logger(label: "test"))
        recorder.start()
        defer { recorder.stop() }
        for _ in 0..<25 {
            recorder.record(Visit(ip: nil, userAgent: [], countryCode: "DE", countryName: nil, time: Date()))
        }
        // The writer runs on its own thread: wait (bounded) for it to catch up.
        for _ in 0..<100 where try store.stats().totalVisitors < 20 {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try store.stats().totalVisitors == 20)
        #expect(recorder.pendingVisits == 5)
    }
}
