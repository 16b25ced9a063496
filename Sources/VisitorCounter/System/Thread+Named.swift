import Foundation

extension Thread {
    /// Runs `body` on a thread of its own, named `name` as `top -H`, `ps -L` and debuggers show it.
    ///
    /// The counter's blocking work (libfcgi's reads, SQLite and libpq writes, the periodic refreshes)
    /// runs on such threads, never on Swift's cooperative pool, which it would hold up.
    ///
    /// The thread names itself, through the kernel: Foundation on Linux passes a name to the kernel
    /// only when it is set on the thread itself, and only once the starting thread has stored the new
    /// thread's handle, which under load it may not have done yet. The thread would then keep the name
    /// of the thread that started it. Linux allows 15 bytes for a thread name; the names used here are
    /// shorter.
    static func start(named name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            nameCurrentThread(name)
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Gives the calling thread `name` (its first 15 bytes) in the kernel, through the file that
    /// `pthread_setname_np` writes for a thread other than its caller.
    private static func nameCurrentThread(_ name: String) {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        let bytes = Array(name.utf8.prefix(15))
        // Ignored on purpose, like a failed `open` above: a thread without its name works the same.
        _ = write(descriptor, bytes, bytes.count)
    }
}
