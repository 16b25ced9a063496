import Foundation
import Testing

@testable import VisitorCounter

/// Several real processes, each with its own buffer and writer, writing into one file at once:
/// the normal case, one process per worker.
struct MultiProcessTests {
    @Test func sixProcessesWritingSmallBatchesKeepExactTotals() async throws {
        let directory = try TemporaryDirectory()
        let database = directory.path("shared.sqlite")
        let executable = try visitorCounterExecutable()
        let processes = 6
        let visitsEach = 3_000
        let children = try (0..<processes).map { index in
            try ChildProcess(
                executable,
                [
                    "simulate", "--database", database, "--visits", "\(visitsEach)", "--batch-size", "25",
                    "--threads", "4", "--countries", "US,GB,DE,FR,JP,XX",
                ],
                in: directory, name: "writer-\(index)")
        }
        // Every writer writes all its visits. A write may wait out the 5 s busy timeout while six
        // processes take turns at the lock on a loaded machine (seen once, on 2 cores running the whole
        // suite): it is retried, as in production, and the totals below must still be exact.
        for child in children {
            let status = await child.exitStatus()
            #expect(status == 0, "a writer did not write all its visits: \(child.stdout) \(child.stderr)")
            #expect(child.stdout.contains("\"recorded\": \(visitsEach), \"written\": \(visitsEach),"), "\(child.stdout)")
            if !child.stdout.contains("\"failed_writes\": 0") { print("multi-process: a write was retried: \(child.stdout)") }
        }

        let store = try SQLiteStore(path: database)
        let stats = try store.stats()
        let total = processes * visitsEach
        #expect(stats.totalVisitors == total)
        #expect(try store.visitorRowCount() == total)
        // Each process hands codes out in turn, so each country gets a sixth of every process's visits.
        #expect(stats.countries == Dictionary(uniqueKeysWithValues: ["US", "GB", "DE", "FR", "JP", "XX"].map { ($0, total / 6) }))
        try SQLiteStoreTests.expectInvariant(store)
    }
}
