import Foundation

extension Thread {
    /// Runs `body` on a thread of its own, named `name` as `top -H`, `ps -L` and debuggers show it.
    ///
    /// The counter's blocking work (libfcgi's reads, SQLite and libpq writes, the periodic refreshes)
    /// runs on such threads, never on Swift's cooperative pool, which it would hold up.
    ///
    /// The thread names itself: on Linux, Foundation passes a name set before `start()` to the kernel
    /// only when the thread sets it on itself, so it would otherwise keep the name of the thread that
    /// started it. Linux allows 15 bytes for a thread name; the names used here are shorter.
    static func start(named name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            Thread.current.name = name
            body()
        }
        thread.name = name
        thread.start()
    }
}
