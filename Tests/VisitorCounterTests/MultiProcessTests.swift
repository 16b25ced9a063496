import Foundation
import Testing

@testable import VisitorCounter

/// Several real processes, each with its own buffer and writer, writing into one file at once:
/// the normal case, one process per worker.
struct MultiProcessTests {
    @Test func sixProcessesWritingSmallBatchesKeepExactTotals() throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("shared.sqlite")
        let executable = try visitorCounterExecutable()
        let processes = 6
        let visitsEach = 6_000
        let children = try (0..<processes).map { index in
            try ChildProcess(
                executable,
                [
                    "simulate", "--database", database, "--visits", "\(visitsEach)", "--batch-size", "25",
                    "--threads", "4", "--countries", "US,GB,DE,FR,JP,XX",
                ],
                in: directory, name: "writer-\(index)")
        }
        for child in children {
            let status = child.wait()
            #expect(status == 0, "a writer failed: \(child.stdout) \(child.stderr)")
            #expect(!child.stderr.contains("locked"), "a write hit a lock: \(child.stderr)")
            #expect(child.stdout.contains("\"failed_writes\": 0"), "\(child.stdout)")
        }

        let store = try VisitorStore(path: database)
        let stats = try store.stats()
        let total = processes * visitsEach
        #expect(stats.totalVisitors == total)
        #expect(try store.visitorRowCount() == total)
        // Each process hands codes out in turn, so each country gets a sixth of every process's visits.
        #expect(stats.countries == Dictionary(uniqueKeysWithValues: ["US", "GB", "DE", "FR", "JP", "XX"].map { ($0, total / 6) }))
        try VisitorStoreTests.expectInvariant(store)
    }
}
