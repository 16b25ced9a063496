#if canImport(Glibc)
import Glibc
#endif

/// Files that several worker processes append to (spill files, the audit log), each append whole and
/// under an exclusive `flock`, so that lines never interleave and a reader that removes or renames the
/// file never loses a line appended meanwhile.
enum LockedFile {
    /// Opens `path` for appending (creating it with `mode`), takes an exclusive lock and runs `body`
    /// with the descriptor and the file's size. A file that another process removed or renamed between
    /// the `open` and the lock is opened again, so nothing is ever written to a file on its way out.
    static func withAppendLock<T>(_ path: String, mode: mode_t = 0o600, _ body: (Int32, Int) throws -> T) throws -> T {
        while true {
            let descriptor = try systemCall("open", path) { open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode) }
            defer { close(descriptor) }
            try systemCall("flock", path) { flock(descriptor, LOCK_EX) }
            var opened = stat()
            var named = stat()
            try systemCall("fstat", path) { fstat(descriptor, &opened) }
            guard stat(path, &named) == 0, named.st_ino == opened.st_ino, named.st_dev == opened.st_dev else { continue }
            return try body(descriptor, Int(opened.st_size))
        }
    }

    /// Opens an existing file for reading under an exclusive lock, so no append happens while `body`
    /// reads it and (if it wants) removes it; `nil` when the file is not there (any more).
    ///
    /// A symbolic link is not followed, and a file this service did not make (another owner, or
    /// permissions for others) is not read: both throw ``VisitJournal/OpenError/untrusted(path:reason:)``.
    static func withReadLock<T>(_ path: String, _ body: (Int32) throws -> T) throws -> T? {
        let descriptor = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            let failure = VisitJournal.openFailure(path: path, errno: errno)
            if case VisitJournal.OpenError.gone = failure { return nil }
            throw failure
        }
        defer { close(descriptor) }
        try systemCall("flock", path) { flock(descriptor, LOCK_EX) }
        var opened = stat()
        try systemCall("fstat", path) { fstat(descriptor, &opened) }
        guard opened.st_nlink > 0 else { return nil }  // removed by whoever held the lock before us
        if let reason = VisitJournal.untrustedReason(opened) {
            throw VisitJournal.OpenError.untrusted(path: path, reason: reason)
        }
        return try body(descriptor)
    }

    /// Appends `bytes` (one or more whole lines) to a file opened by ``withAppendLock(_:mode:_:)``, whose
    /// size was `size`; with `sync`, waits until they are on disk. On a failure the file is cut back to
    /// `size`, so a failed append leaves no part of a line behind to be glued to the next. A file whose
    /// last line was cut short (by a crash) gets a newline first, so that piece stays a line of its own.
    static func appendLines(_ bytes: [UInt8], to descriptor: Int32, size: Int, path: String, sync: Bool) throws {
        var bytes = bytes
        var last: UInt8 = 0
        if size > 0, pread(descriptor, &last, 1, off_t(size - 1)) == 1, last != UInt8(ascii: "\n") {
            bytes.insert(UInt8(ascii: "\n"), at: 0)
        }
        do {
            try FileDescriptor.writeAll(bytes, to: descriptor, subject: path)
            if sync { try systemCall("fsync", path) { fsync(descriptor) } }
        } catch {
            // Ignored on purpose: the append's own error is the one to report, and a part of a line
            // left behind stays one damaged line, since the next append starts a new line (above).
            _ = ftruncate(descriptor, off_t(size))
            throw error
        }
    }
}
