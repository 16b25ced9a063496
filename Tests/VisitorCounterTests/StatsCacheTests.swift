import Foundation
import Testing

@testable import VisitorCounter

/// The stats cache's lock, which every `GET /` takes to copy the pages: never held while a page renders.
struct StatsCacheTests {
    @Test func aNewCountryDatabaseIsRenderedOutsideTheLockByOneThread() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path("visitors.sqlite"))
        let renders = SharedCount(0)
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let cache = try StatsCache(store: store, period: .seconds(600), logger: quietLogger) { dashboard in
            // Only the rendering that names a country database is held up, until the test lets it go.
            if dashboard.geoipDatabase != nil {
                renders.add(1)
                started.signal()
                release.wait()
            }
            return RenderedPages(dashboard: dashboard, maxAge: 600)
        }
        let november = GeoIPDatabase(buildEpoch: "1793491200", databaseType: "DBIP-Country-Lite")!  // 2026-11-01
        let renderer = DispatchSemaphore(value: 0)
        Thread.start(named: "renderer") {
            cache.use(november)
            renderer.signal()
        }
        #expect(started.wait(timeout: .now() + 60) == .success)

        // While it renders, other requests that name the same database, and every GET /, go on with the
        // pages there were: off this thread, so that a wait for the lock fails the test instead of hanging it.
        let others = DispatchSemaphore(value: 0)
        let sawOldPage = SharedCount(0)
        Thread.start(named: "requests") {
            for _ in 0..<10 {
                cache.use(november)
                if !cache.pages.index.body.contains("November 2026 edition") { sawOldPage.add(1) }
            }
            others.signal()
        }
        let answered = others.wait(timeout: .now() + 60) == .success
        release.signal()
        #expect(answered, "a request waited for the rendering")
        #expect(sawOldPage.load() == 10)
        #expect(renderer.wait(timeout: .now() + 60) == .success)
        #expect(renders.load() == 1)
        #expect(cache.pages.index.body.contains("November 2026 edition"))
        cache.use(november)
        #expect(renders.load() == 1)
    }

    @Test func aRenderingOvertakenByARefreshIsDroppedAndDoneAgainByTheNextRequest() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path("visitors.sqlite"))
        let hold = SharedCount(1)
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let cache = try StatsCache(store: store, period: .seconds(600), logger: quietLogger) { dashboard in
            if dashboard.geoipDatabase != nil && hold.load() == 1 {
                started.signal()
                release.wait()
            }
            return RenderedPages(dashboard: dashboard, maxAge: 600)
        }
        let november = GeoIPDatabase(buildEpoch: "1793491200", databaseType: "DBIP-Country-Lite")!
        let renderer = DispatchSemaphore(value: 0)
        Thread.start(named: "renderer") {
            cache.use(november)
            renderer.signal()
        }
        #expect(started.wait(timeout: .now() + 60) == .success)
        try store.write(VisitBatch(counting: [Visit(trustedIP: "192.0.2.1", userAgent: "test", country: "France", countryCode: "FR", time: Date())]))
        cache.refresh()  // new figures while the page with the database renders from the old ones
        #expect(cache.pages.stats.totalVisitors == 1)
        hold.add(-1)
        release.signal()
        #expect(renderer.wait(timeout: .now() + 60) == .success)
        // The rendering from the old figures did not replace the new ones.
        #expect(cache.pages.stats.totalVisitors == 1)
        #expect(!cache.pages.index.body.contains("November 2026 edition"))
        cache.use(november)
        #expect(cache.pages.stats.totalVisitors == 1)
        #expect(cache.pages.index.body.contains("November 2026 edition"))
    }
}
