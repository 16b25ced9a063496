import Foundation
import Logging
import Synchronization

/// The worker's rendered pages, refreshed from the database on a thread of its own every `period`, so
/// a request only ever copies the current pages and never reads the database itself.
public final class StatsCache: Sendable {
    private let current: Mutex<RenderedPages>
    private let store: VisitorStore
    private let period: Duration
    private let page: IndexPage
    private let logger: Logger

    /// How `GET /` is rendered: the template and, for a site owner's template, their own policy.
    public struct IndexPage: Sendable {
        public var template: IndexTemplate
        /// `--index-csp`, in place of the template's own policy.
        public var contentSecurityPolicy: String?

        public init(template: IndexTemplate = .standard, contentSecurityPolicy: String? = nil) {
            self.template = template
            self.contentSecurityPolicy = contentSecurityPolicy
        }
    }

    /// Reads the figures once, so the first request already has pages.
    public init(store: VisitorStore, period: Duration, page: IndexPage = IndexPage(), logger: Logger) throws {
        self.store = store
        self.period = period
        self.page = page
        self.logger = logger
        self.current = Mutex(try Self.render(store: store, period: period, page: page))
    }

    public var pages: RenderedPages { current.withLock { $0 } }

    /// Reads the figures and renders the pages again; on failure the old pages stay and a warning is logged.
    public func refresh() {
        do {
            let pages = try Self.render(store: store, period: period, page: page)
            current.withLock { $0 = pages }
        } catch {
            logger.warning("stats read failed, serving the previous figures", metadata: ["error": "\(error)"])
        }
    }

    /// One read of the totals and the chart's days, rendered into both pages.
    private static func render(store: VisitorStore, period: Duration, page: IndexPage) throws -> RenderedPages {
        let now = Date()
        let seconds = Int(period.components.seconds)
        let figures = try store.statsAndDays(now: now, days: Dashboard.chartDays)
        let dashboard = Dashboard(
            stats: figures.stats, days: figures.days, refreshSeconds: Dashboard.refreshSeconds(statsCache: seconds), now: now)
        return RenderedPages(
            dashboard: dashboard, template: page.template, maxAge: seconds,
            contentSecurityPolicy: page.contentSecurityPolicy)
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
