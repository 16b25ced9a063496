import Foundation
import Logging
import Synchronization

/// The worker's rendered pages, refreshed from the database on a thread of its own every `period`, so
/// a request only ever copies the current pages and never reads the database itself.
public final class StatsCache: Sendable {
    private let current: Mutex<RenderedPages>
    private let store: VisitorStore
    private let period: Duration
    private let logger: Logger

    /// Reads the totals once, so the first request already has pages.
    public init(store: VisitorStore, period: Duration, logger: Logger) throws {
        self.store = store
        self.period = period
        self.logger = logger
        self.current = Mutex(RenderedPages(stats: try store.stats(), maxAge: Int(period.components.seconds)))
    }

    public var pages: RenderedPages { current.withLock { $0 } }

    /// Reads the totals and renders the pages again; on failure the old pages stay and a warning is logged.
    public func refresh() {
        do {
            let pages = RenderedPages(stats: try store.stats(), maxAge: Int(period.components.seconds))
            current.withLock { $0 = pages }
        } catch {
            logger.warning("stats read failed, serving the previous figures", metadata: ["error": "\(error)"])
        }
    }

    /// Starts the refresh thread; `everyRefresh` runs after each refresh (the worker checks its parent there).
    public func start(everyRefresh: @escaping @Sendable () -> Void = {}) {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: Double(period.components.seconds))
                refresh()
                everyRefresh()
            }
        }
        thread.name = "stats-cache"
        thread.start()
    }
}
