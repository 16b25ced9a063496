import Foundation
import Logging
import Synchronization

/// The worker's rendered pages, refreshed from the database on a thread of its own every `period`, so
/// a request only ever copies the current pages and never reads the database itself. The cache reads
/// and keeps; ``RenderedPages`` renders.
public final class StatsCache: Sendable {
    private let current: Mutex<State>
    /// The build time (Unix seconds) of the country database the current pages name; checked without
    /// the lock on every `GET /`, so only a newer database costs a lock and a rendering.
    private let geoipBuild = Atomic<Int64>(Int64.min)
    /// The build time of the country database whose pages one request thread is rendering now, so that
    /// the other threads that see it meanwhile do not render them too.
    private let renderingBuild = Atomic<Int64>(Int64.min)
    private let store: any CounterStore
    private let period: Duration
    private let logger: Logger
    /// Renders the pages of a dashboard: ``RenderedPages`` with the page and period asked; a test can
    /// watch or hold up a rendering here.
    let render: @Sendable (Dashboard) -> RenderedPages

    /// The pages and the figures they were rendered from, so a new country database can be named
    /// without reading the database again.
    private struct State {
        var dashboard: Dashboard
        var pages: RenderedPages
        /// Counts the changes, so that a rendering done outside the lock can tell whether what it
        /// started from is still current.
        var generation = 0
    }

    /// Reads the figures once, so the first request already has pages.
    public convenience init(store: any CounterStore, period: Duration, page: IndexPage = IndexPage(), logger: Logger) throws {
        try self.init(store: store, period: period, logger: logger) { dashboard in
            RenderedPages(dashboard: dashboard, page: page, maxAge: period)
        }
    }

    init(
        store: any CounterStore, period: Duration, logger: Logger,
        render: @escaping @Sendable (Dashboard) -> RenderedPages
    ) throws {
        self.store = store
        self.period = period
        self.logger = logger
        self.render = render
        let dashboard = try Self.read(store: store, period: period, geoipDatabase: nil)
        self.current = Mutex(State(dashboard: dashboard, pages: render(dashboard)))
    }

    public var pages: RenderedPages { current.withLock { $0.pages } }

    /// Reads the figures and renders the pages again; on failure the old pages stay and a warning is logged.
    public func refresh() {
        do {
            let geoipDatabase = current.withLock { $0.dashboard.geoipDatabase }
            let dashboard = try Self.read(store: store, period: period, geoipDatabase: geoipDatabase)
            let pages = render(dashboard)
            current.withLock { state in
                // A newer country database may have come meanwhile: keep it for the next refresh.
                guard state.dashboard.geoipDatabase == geoipDatabase else { return }
                state = State(dashboard: dashboard, pages: pages, generation: state.generation + 1)
            }
        } catch {
            logger.warning("stats read failed, serving the previous figures", metadata: ["error": "\(error)"])
        }
    }

    /// Names `database` on the page from now on, rendering the current figures again at once, when it
    /// was built later than the one named so far (or none was). Older ones are ignored: while nginx
    /// reloads, its old and new workers pass both, and the page should not flip between them.
    ///
    /// The rendering is done outside the lock that every `GET /` takes to copy the pages, by the one
    /// request thread that saw the new database first; the others serve the pages before it meanwhile,
    /// and the new ones are swapped in under the lock once made. If a refresh swapped in new figures
    /// during the rendering, the rendering is dropped, and the next request that names the database
    /// renders again.
    public func use(_ database: GeoIPDatabase) {
        let build = database.build.map { Int64($0.timeIntervalSince1970) } ?? 0
        guard build > geoipBuild.load(ordering: .relaxed) else { return }
        // One renderer per build: a thread that finds this build (or a newer one) being rendered goes on.
        var claimed = renderingBuild.load(ordering: .acquiring)
        repeat {
            guard build > claimed else { return }
            let (exchanged, original) = renderingBuild.compareExchange(
                expected: claimed, desired: build, ordering: .acquiringAndReleasing)
            if exchanged { break }
            claimed = original
        } while true
        defer { _ = renderingBuild.compareExchange(expected: build, desired: claimed, ordering: .releasing) }
        var (dashboard, generation) = current.withLock { ($0.dashboard, $0.generation) }
        dashboard.geoipDatabase = database
        let pages = render(dashboard)
        current.withLock { state in
            guard state.generation == generation, build > geoipBuild.load(ordering: .relaxed) else { return }
            state = State(dashboard: dashboard, pages: pages, generation: generation + 1)
            geoipBuild.store(build, ordering: .relaxed)
        }
    }

    /// One read of the totals and the chart's days.
    private static func read(store: any CounterStore, period: Duration, geoipDatabase: GeoIPDatabase?) throws -> Dashboard {
        let now = Date()
        let figures = try store.statsAndDays(now: now, days: Dashboard.chartDays)
        var dashboard = Dashboard(
            stats: figures.stats, days: figures.days,
            refreshSeconds: Dashboard.refreshSeconds(statsCache: Int(period.components.seconds)), now: now)
        dashboard.geoipDatabase = geoipDatabase
        return dashboard
    }

    /// Starts the refresh thread; `everyRefresh` runs after each refresh (the worker checks its parent there).
    public func start(everyRefresh: @escaping @Sendable () -> Void = {}) {
        Thread.start(named: "stats-cache") { [self] in
            while true {
                Thread.sleep(forTimeInterval: Double(period.components.seconds))
                refresh()
                everyRefresh()
            }
        }
    }
}
