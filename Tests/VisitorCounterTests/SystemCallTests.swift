import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The checked system call, on real descriptors.
struct SystemCallTests {
    @Test func aResultPastInt32ComesBackWhole() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("sparse")
        let descriptor = try systemCall("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(descriptor) }
        // lseek answers an off_t; 5 GB is past what an Int32 holds, and a regular file may be sought past its end.
        let offset = try systemCall("lseek", path) { lseek(descriptor, 5_000_000_000, SEEK_SET) }
        #expect(offset == 5_000_000_000)
        let written = try systemCall("write", path) { write(descriptor, "x", 1) }
        #expect(written == 1)
        var status = stat()
        try systemCall("fstat", path) { fstat(descriptor, &status) }
        #expect(status.st_size == 5_000_000_001)
    }

    @Test func aFailureNamesTheCallItsSubjectAndErrno() {
        #expect {
            try systemCall("close", "descriptor -1") { close(-1) }
        } throws: { error in
            (error as? SystemCallError)?.errno == EBADF && "\(error)".hasPrefix("close descriptor -1 failed: ")
        }
    }

    @Test func anInterruptedCallIsMadeAgain() throws {
        var calls = 0
        let result = try systemCall("read") { () -> Int in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 42
        }
        #expect(result == 42)
        #expect(calls == 3)
    }

    @Test func aCallThatAnswersItsErrorNumberThrowsIt() throws {
        // posix_fallocate sets no errno: it answers the error.
        #expect {
            try systemCallReturningError("posix_fallocate", "descriptor -1") { posix_fallocate(-1, 0, 1) }
        } throws: { error in
            (error as? SystemCallError)?.errno == EBADF && "\(error)".hasPrefix("posix_fallocate descriptor -1 failed: ")
        }
        var actions = posix_spawn_file_actions_t()
        try systemCallReturningError("posix_spawn_file_actions_init") { posix_spawn_file_actions_init(&actions) }
        defer { posix_spawn_file_actions_destroy(&actions) }
        // A negative descriptor is refused when the action is added, not at the spawn.
        #expect {
            try systemCallReturningError("posix_spawn_file_actions_adddup2") {
                posix_spawn_file_actions_adddup2(&actions, -1, 3)
            }
        } throws: { error in
            (error as? SystemCallError)?.errno == EBADF
        }
    }
}
