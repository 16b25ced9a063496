import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The listening socket that every worker accepts FastCGI connections on.
///
/// It is made non-blocking: request threads wait in `poll` (so a stop can wake them) and then call
/// `FCGX_Accept_r`, which gets `EAGAIN` instead of blocking when another worker took the connection.
public struct ListeningSocket: Sendable {
    public let descriptor: Int32
    public let address: ListenAddress

    /// Why a socket could not be opened, in words for the one line `serve` prints before it exits.
    public enum OpenError: Error, CustomStringConvertible {
        case inUse(String)
        case notASocket(String)
        case replaced(String)
        case noInheritedSocket
        case badHost(String)
        case noSuchGroup(String)
        case notLoopback(String)
        case system(SystemCallError)

        public var description: String {
            switch self {
            case .inUse(let path): "\(path) is in use by a running process (another visitor-counter?)"
            case .notASocket(let path): "\(path) exists and is not a socket: refusing to replace it"
            case .replaced(let path):
                "\(path) was replaced by something other than this socket right after it was made: "
                    + "is its folder writable by others?"
            case .noInheritedSocket:
                "no --listen given and standard input is not a listening socket: pass --listen unix:/path "
                    + "or --listen 127.0.0.1:9000, or start it from a systemd socket unit"
            case .badHost(let host): "\(host) is not an IPv4 or IPv6 address"
            case .noSuchGroup(let group): "there is no group \(group) for --socket-group (see getent group)"
            case .notLoopback(let address):
                "\(address) can be reached from other machines, and libfcgi must only parse what nginx sends: "
                    + "listen on 127.0.0.1 or ::1, or name nginx's addresses with --allowed-clients"
            case .system(let error): error.description
            }
        }
    }

    /// Opens the socket `address` names, with `mode` as the permissions of a unix socket file and
    /// `group` (a name or a number) as its group.
    ///
    /// A unix socket file left by a process that died is replaced; one that still answers is not. A TCP
    /// socket that other machines can reach (not on a loopback address) needs `allowsOtherHosts`: the
    /// workers then close every peer not on the ``PeerAllowList``.
    public static func open(
        _ address: ListenAddress, mode: mode_t, group: String? = nil, allowsOtherHosts: Bool = false, backlog: Int32 = 1024
    ) throws(OpenError) -> ListeningSocket {
        do {
            let descriptor: Int32
            switch address {
            case .inherited:
                guard isListeningSocket(0) else { throw OpenError.noInheritedSocket }
                if let host = boundTCPHost(0), !allowsOtherHosts, !PeerAllowList.isLoopback(host) {
                    throw OpenError.notLoopback("the inherited socket on \(host)")
                }
                descriptor = 0
            case .unix(let path):
                var groupID: gid_t?
                if let group { groupID = try Self.groupID(group) }
                descriptor = try openUnix(path: path, mode: mode, group: groupID, backlog: backlog)
            case .tcp(let host, let port):
                guard allowsOtherHosts || PeerAllowList.isLoopback(host) else { throw OpenError.notLoopback(address.description) }
                descriptor = try openTCP(host: host, port: port, backlog: backlog)
            }
            let flags = try systemCall("fcntl", "F_GETFL") { fcntl(descriptor, F_GETFL) }
            try systemCall("fcntl", "F_SETFL") { fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) }
            return ListeningSocket(descriptor: descriptor, address: address)
        } catch let error as OpenError {
            throw error
        } catch let error as SystemCallError {
            throw .system(error)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }

    /// Whether `descriptor` is a socket that is listening.
    public static func isListeningSocket(_ descriptor: Int32) -> Bool {
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting == 1
    }

    /// Removes the socket file of a unix socket; the supervisor calls it when it stops. A failure is
    /// ignored on purpose: the next start finds a socket file that nobody listens on and removes it.
    public func removeSocketFile() {
        if case .unix(let path) = address { _ = unlink(path) }
    }

    /// The group `name` names, or the number it is.
    private static func groupID(_ name: String) throws(OpenError) -> gid_t {
        if let number = gid_t(name) { return number }
        guard let entry = getgrnam(name) else { throw .noSuchGroup(name) }
        return entry.pointee.gr_gid
    }

    /// The address a listening TCP socket is bound to; `nil` for a unix socket.
    static func boundTCPHost(_ descriptor: Int32) -> String? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0, [AF_INET, AF_INET6].contains(Int32(address.ss_family)) else { return nil }
        return PeerAllowList.describe(address)
    }

    /// Binds a unix socket at `path`, with `mode` and `group`, without ever following a link at `path`.
    ///
    /// In a folder others can write, the socket file can be swapped for a symbolic link between `bind`
    /// and what comes next; a `chmod` or `chown` by path would then change the link's target (as root,
    /// any file). So the mode comes from the umask at `bind`, the group is set with `lchown`, which
    /// changes a link itself and not its target, and then `lstat` must find a socket of this user at
    /// `path`, or the socket is given up. No one can connect before `listen`, so the group is right
    /// before anyone can use the mode. `afterBind` lets tests swap the file in that window.
    static func openUnix(
        path: String, mode: mode_t, group: gid_t?, backlog: Int32, afterBind: () -> Void = {}
    ) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8)
        }
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw OpenError.notASocket(path) }
            if try canConnect(to: &address) { throw OpenError.inUse(path) }
            try systemCall("unlink", path) { unlink(path) }
        }
        let descriptor = try systemCall("socket", "AF_UNIX") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            let previousMask = umask(~mode & 0o777)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            let bindError = errno
            umask(previousMask)
            if bound != 0 { throw SystemCallError(call: "bind", subject: path, errno: bindError) }
            afterBind()
            if let group { try systemCall("lchown", path) { lchown(path, uid_t.max, group) } }
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK, status.st_uid == geteuid() else {
                throw OpenError.replaced(path)
            }
            try systemCall("listen", path) { listen(descriptor, backlog) }
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// Whether a process listens on the socket file. A probe that cannot be made throws, rather than
    /// answer `false` and have the file of a running service removed.
    private static func canConnect(to address: inout sockaddr_un) throws -> Bool {
        let probe = try systemCall("socket", "AF_UNIX probe") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { close(probe) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    private static func openTCP(host: String, port: UInt16, backlog: Int32) throws -> Int32 {
        guard let address = IPAddress(host) else { throw OpenError.badHost(host) }
        var (storage, length) = address.socketAddress(port: port)
        let descriptor = try systemCall("socket", host) { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            var yes: Int32 = 1
            try systemCall("setsockopt", "SO_REUSEADDR") {
                setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            }
            try systemCall("bind", "\(host):\(port)") {
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
                }
            }
            try systemCall("listen", "\(host):\(port)") { listen(descriptor, backlog) }
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
    }
}
