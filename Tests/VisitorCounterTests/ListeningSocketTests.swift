import Foundation
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// `--listen unix:PATH` in a folder others can write: the socket file swapped for a link to another
/// file right after `bind` must not hand that file the socket's mode or group.
struct ListeningSocketTests {
    @Test func aLinkSwappedInAfterBindIsNotFollowed() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("fcgi.sock")
        let target = directory.path("victim")
        try "secret\n".write(toFile: target, atomically: true, encoding: .utf8)
        chmod(target, 0o600)
        var before = stat()
        #expect(lstat(target, &before) == 0)
        // A group that is not the file's, so that a chown that followed the link would show.
        let group = before.st_gid == 0 ? gid_t(65534) : gid_t(0)

        #expect(throws: ListeningSocket.OpenError.self) {
            let descriptor = try ListeningSocket.openUnix(path: path, mode: 0o666, group: group, backlog: 16) {
                unlink(path)
                symlink(target, path)
            }
            close(descriptor)
        }
        var after = stat()
        #expect(lstat(target, &after) == 0)
        #expect(after.st_mode & 0o7777 == 0o600)
        #expect(after.st_gid == before.st_gid)
        // The link is still there, and nothing listens at it.
        var link = stat()
        #expect(lstat(path, &link) == 0 && link.st_mode & S_IFMT == S_IFLNK)
    }

    /// Without a swap: the socket file has the mode and group asked for, and the process's umask is as
    /// it was (read from /proc, since setting it would touch the other tests running in this process).
    @Test func theSocketFileHasTheModeAndGroupAskedFor() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("fcgi.sock")
        let group = getegid() == 0 ? gid_t(65534) : getegid()
        let maskBefore = try Self.umask()
        let descriptor = try ListeningSocket.openUnix(path: path, mode: 0o660, group: group, backlog: 16)
        defer { close(descriptor) }
        var status = stat()
        #expect(lstat(path, &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFSOCK)
        #expect(status.st_mode & 0o7777 == 0o660)
        #expect(status.st_gid == group)
        #expect(try Self.umask() == maskBefore)
    }

    static func umask() throws -> String {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        return try #require(status.split(separator: "\n").first { $0.hasPrefix("Umask:") }.map(String.init))
    }
}
