import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

struct SharedMemoryTests {
    @Test func holdsWhatWasWrittenAndLeavesNoNameBehind() throws {
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))
        let contents = Array("template ✓\n".utf8) + [UInt8](repeating: 7, count: 100_000)
        // A purpose of its own: another test's object may exist for a moment between the two listings.
        let descriptor = try SharedMemory.create("name-test", contents: contents)
        defer { close(descriptor) }
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))
        #expect(after.subtracting(before).filter { $0.contains("visitor-counter-name-test") }.isEmpty)
        var status = stat()
        #expect(fstat(descriptor, &status) == 0)
        #expect(Int(status.st_size) == contents.count)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(try FileDescriptor.readAll(descriptor, subject: "test") == contents)
        // Close-on-exec, as shm_open makes it: a worker gets it only by the supervisor's dup2.
        #expect(fcntl(descriptor, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func anEmptyObjectReadsEmpty() throws {
        let descriptor = try SharedMemory.create("test", contents: [])
        defer { close(descriptor) }
        #expect(try FileDescriptor.readAll(descriptor, subject: "test") == [])
    }

    @Test func aClosedDescriptorNamesTheCallAndTheSubject() {
        #expect {
            try FileDescriptor.readAll(-1, subject: "the shared template")
        } throws: { error in
            "\(error)".hasPrefix("pread the shared template failed") && (error as? SystemCallError)?.errno == EBADF
        }
    }
}
