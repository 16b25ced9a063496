import Foundation
import Logging

/// Deletes raw visit rows older than `--retention-days`, on a thread of its own in the first worker,
/// once at the start and then every hour: 1,000 rows per transaction with a pause between, so no
/// transaction holds the write lock for long and batches keep getting through. Totals, per-country
/// counts and the daily rollup are never reduced.
public final class Retention: Sendable {
    private let store: any CounterStore
    private let days: Int
    private let logger: Logger

    public static let chunk = 1000
    public static let period: TimeInterval = 3600

    public init(store: any CounterStore, days: Int, logger: Logger) {
        self.store = store
        self.days = days
        self.logger = logger
    }

    /// Deletes every row from before the local day `days` days before `now`'s (the store's zone), so
    /// rows are kept for whole local days: today's and those of the `days` days before; answers how many.
    @discardableResult
    public func run(now: Date = Date(), pause: TimeInterval = 0.05) -> Int {
        let calendar = store.calendar
        let cutoff = calendar.start(ofDay: calendar.day(now) - days)
        var total = 0
        do {
            while true {
                let deleted = try store.deleteRows(olderThan: cutoff, limit: Self.chunk)
                total += deleted
                if deleted < Self.chunk { break }
                Thread.sleep(forTimeInterval: pause)
            }
        } catch {
            logger.warning("retention: deleting old rows failed, will try again", metadata: ["error": "\(error)"])
        }
        if total > 0 {
            logger.info("retention: old rows deleted", metadata: ["retention.rows": "\(total)", "retention.days": "\(days)"])
        }
        return total
    }

    public func start() {
        Thread.start(named: "retention") { [self] in
            while true {
                run()
                Thread.sleep(forTimeInterval: Self.period)
            }
        }
    }
}
