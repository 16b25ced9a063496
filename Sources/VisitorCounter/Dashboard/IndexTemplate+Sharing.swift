import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `serve` reads an owner's template once, at its start, and hands the text to every worker in shared
/// memory, as descriptor ``Supervisor/templateDescriptor``. A worker restarted later renders the same
/// text: an edit of the file takes effect when the service restarts, and an edit that does not parse
/// cannot reach a running service.
extension IndexTemplate {
    /// Copies the text into shared memory that is unlinked at once; the descriptor is inherited by the
    /// processes spawned from here.
    public func sharedCopy() throws -> Int32 {
        let name = "/visitor-counter-template-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = try systemCall("shm_open", name) { shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600) }
        shm_unlink(name)
        do {
            try LockedFile.writeAll(Array(text.utf8), to: descriptor, path: "shared memory")
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// The template `serve` shared with ``sharedCopy()``; `source` names its file in messages.
    public init(sharedDescriptor descriptor: Int32, source: String) throws {
        var status = stat()
        try systemCall("fstat", "the shared template") { fstat(descriptor, &status) }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(done))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw SystemCallError(call: "pread", subject: "the shared template", errno: count < 0 ? errno : EIO) }
            done += count
        }
        try self.init(text: String(decoding: bytes, as: UTF8.self), source: source)
    }
}
