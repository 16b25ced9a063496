import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// FastCGI spoken without nginx, for the tests of what the counter does with peers and records nginx
/// would never send: records built by hand, over a unix or TCP connection of their own.
enum FastCGIClient {
    /// A record of request `id` (1 unless said).
    static func record(type: UInt8, _ content: [UInt8], id: UInt16 = 1) -> [UInt8] {
        [1, type, UInt8(id >> 8), UInt8(id & 0xff), UInt8(content.count >> 8), UInt8(content.count & 0xff), 0, 0] + content
    }

    /// A name-value length as FastCGI writes it: one byte below 128, else four with the top bit set.
    static func length(_ count: Int) -> [UInt8] {
        count < 128
            ? [UInt8(count)] : [UInt8(0x80 | (count >> 24)), UInt8((count >> 16) & 0xff), UInt8((count >> 8) & 0xff), UInt8(count & 0xff)]
    }

    static func pair(_ name: String, _ value: String) -> [UInt8] {
        length(name.utf8.count) + length(value.utf8.count) + Array(name.utf8) + Array(value.utf8)
    }

    /// `FCGI_BEGIN_REQUEST` for a responder, with `FCGI_KEEP_CONN` when `keep`.
    static func begin(keep: Bool = false) -> [UInt8] { record(type: 1, [0, 1, keep ? 1 : 0, 0, 0, 0, 0, 0]) }

    /// A whole `GET` request: begin, its params, the empty params record and the empty stdin record.
    static func get(_ uri: String, keep: Bool = false) -> [UInt8] {
        let params = pair("REQUEST_METHOD", "GET") + pair("REQUEST_URI", uri) + pair("REMOTE_ADDR", "127.0.0.1")
            + pair("HTTP_USER_AGENT", LocalStack.browser)
        return begin(keep: keep) + record(type: 4, params) + record(type: 4, []) + record(type: 5, [])
    }

    /// A connection to a unix socket.
    static func connect(unix path: String) throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("connect to \(path) failed: errno \(errno)")
        }
        return descriptor
    }

    /// A TCP connection to 127.0.0.1:`port` from the loopback address `source`.
    static func connect(port: UInt16, from source: String) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, size) } }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, size) }
        }
        guard bound == 0, connected == 0 else {
            close(descriptor)
            throw TestFailure("connect to 127.0.0.1:\(port) from \(source) failed: errno \(errno)")
        }
        return descriptor
    }

    /// Sends `bytes` and collects the stdout records until `FCGI_END_REQUEST`; `nil` when the counter
    /// closed the connection without an answer. Waits at most `seconds`.
    static func exchange(_ descriptor: Int32, _ bytes: [UInt8], seconds: Int = 10) throws -> String? {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var stdout: [UInt8] = []
        while true {
            var offset = 0
            while received.count - offset >= 8 {
                let length = Int(received[offset + 4]) << 8 | Int(received[offset + 5])
                let end = offset + 8 + length + Int(received[offset + 6])
                guard received.count >= end else { break }
                switch received[offset + 1] {
                case 3: return String(decoding: stdout, as: UTF8.self)
                case 6: stdout += received[(offset + 8)..<(offset + 8 + length)]
                default: break
                }
                offset = end
            }
            received.removeFirst(offset)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) { return nil }
            guard count > 0 else { throw TestFailure("no answer within \(seconds) s: errno \(errno)") }
            received += buffer[0..<count]
        }
    }
}
