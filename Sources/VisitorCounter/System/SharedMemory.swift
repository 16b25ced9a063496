#if canImport(Glibc)
import Glibc
#endif

/// Memory the supervisor fills once and hands to the workers it spawns, as an inherited descriptor:
/// the status board and an owner's index template.
///
/// The POSIX shared memory object is unlinked as soon as it is made, so only the descriptor names it:
/// no file is left behind when the service dies, and nothing but the processes holding the descriptor
/// can reach it.
enum SharedMemory {
    /// Makes an object named after `purpose` (a word such as `template`) and this process, writes
    /// `contents` into it and returns its descriptor. Like every `shm_open` descriptor it is
    /// close-on-exec: a worker gets it only where the supervisor `dup2`s it to a fixed number.
    ///
    /// Written rather than only truncated to size, so the pages exist now: a full `/dev/shm` later
    /// would otherwise make the first store into a mapped page kill the process with SIGBUS.
    static func create(_ purpose: String, contents: [UInt8]) throws -> Int32 {
        let name = "/visitor-counter-\(purpose)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = try systemCall("shm_open", name) { shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600) }
        do {
            // Unlinked at once: only descriptors reach it, and nothing is left in /dev/shm.
            try systemCall("shm_unlink", name) { shm_unlink(name) }
            try FileDescriptor.writeAll(contents, to: descriptor, subject: "shared memory (\(purpose))")
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
    }
}
