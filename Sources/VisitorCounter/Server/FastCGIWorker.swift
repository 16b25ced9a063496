import CFastCGI
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One worker process's request threads: each waits for a FastCGI connection on the shared listening
/// socket, answers its requests through the ``Router`` and goes back to waiting.
///
/// libfcgi's `FCGX_Accept_r` blocks in `accept` or `read` and no signal wakes it, so each thread first
/// waits in `poll` on the socket it would read (the listening socket, or the connection nginx kept
/// open) together with a stop pipe. A stop writes to the pipe: idle threads return at once, threads
/// in the middle of a request finish it first. The listening socket is non-blocking, so a thread
/// that lost the race for a connection to another worker gets `EAGAIN` and polls again.
public final class FastCGIWorker: Sendable {
    private let listeningDescriptor: Int32
    private let threadCount: Int
    private let router: Router
    private let logger: Logger
    /// Read end and write end of the stop pipe.
    private let stopPipe: (read: Int32, write: Int32)
    private let threads = DispatchGroup()
    private let requestsAnswered = Atomic<Int>(0)

    public init(listeningDescriptor: Int32, threadCount: Int, router: Router, logger: Logger) throws {
        guard FCGX_Init() == 0 else { throw SystemCallError(call: "FCGX_Init", subject: nil, errno: errno) }
        var descriptors: [Int32] = [0, 0]
        try systemCall("pipe") { pipe(&descriptors) }
        for descriptor in descriptors {
            try systemCall("fcntl", "FD_CLOEXEC") { fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        }
        self.stopPipe = (descriptors[0], descriptors[1])
        self.listeningDescriptor = listeningDescriptor
        self.threadCount = threadCount
        self.router = router
        self.logger = logger
    }

    /// Starts the request threads.
    public func start() {
        for index in 0..<threadCount {
            threads.enter()
            let thread = Thread { [self] in
                serveConnections()
                threads.leave()
            }
            thread.name = "fastcgi-\(index)"
            thread.start()
        }
    }

    /// Stops taking new requests, and returns when the requests in flight are answered.
    public func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        threads.wait()
    }

    public var answered: Int { requestsAnswered.load(ordering: .relaxed) }

    private func serveConnections() {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        FCGX_InitRequest(request, listeningDescriptor, 0)
        defer { FCGX_Free(request, 1) }

        while waitUntilReadable(request.pointee.ipcFd >= 0 ? request.pointee.ipcFd : listeningDescriptor) {
            let result = FCGX_Accept_r(request)
            guard result == 0 else {
                // -EAGAIN: another thread or worker took the connection, or nginx closed a kept one.
                // Anything else (out of descriptors, say) would make poll answer at once for ever:
                // say so and pause instead of spinning.
                if -result != EAGAIN && -result != EWOULDBLOCK {
                    logger.warning(
                        "accepting a connection failed",
                        metadata: ["error": "\(SystemCallError(call: "FCGX_Accept_r", subject: nil, errno: -result))"])
                    usleep(100_000)
                }
                continue
            }
            answer(request)
            FCGX_Finish_r(request)
            requestsAnswered.add(1, ordering: .relaxed)
        }
    }

    /// Waits until `descriptor` is readable (`true`) or a stop was asked for (`false`).
    private func waitUntilReadable(_ descriptor: Int32) -> Bool {
        var descriptors = [
            pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            if descriptors[1].revents != 0 { return false }
            if ready > 0 { return true }
            logger.error("poll failed", metadata: ["error": "\(SystemCallError(call: "poll", subject: nil, errno: errno))"])
            return false
        }
    }

    private func answer(_ request: UnsafeMutablePointer<FCGX_Request>) {
        let params = Params(request.pointee.envp)
        let response = router.respond(
            to: Request(
                method: params.method.map { String(cString: $0) } ?? "GET",
                uri: params.uri.map { String(cString: $0) } ?? "/",
                remoteAddress: params.remoteAddress.map { String(cString: $0) },
                userAgent: params.userAgent.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? [],
                countryCode: params.countryCode.map { String(cString: $0) },
                countryName: params.countryName.map { String(cString: $0) },
                acceptsGzip: params.acceptEncoding.map { Request.acceptsGzip(UnsafeRawBufferPointer(start: $0, count: strlen($0))) }
                    ?? false,
                geoipDatabase: GeoIPDatabase(
                    buildEpochBytes: params.databaseBuild.map { UnsafeRawBufferPointer(start: $0, count: strlen($0)) },
                    databaseTypeBytes: params.databaseType.map { UnsafeRawBufferPointer(start: $0, count: strlen($0)) })))
        let written = response.wireBytes.withUnsafeBytes { bytes in
            FCGX_PutStr(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count), request.pointee.out)
                == Int32(bytes.count)
        }
        if !written {
            logger.debug("client went away before the answer was written")
        }
    }
}

/// The params the router reads, found in one pass over a request's `NAME=value` environment:
/// `FCGX_GetParam` would walk all of it (some 35 params from nginx) once per name.
private struct Params {
    var method: UnsafePointer<CChar>?
    var uri: UnsafePointer<CChar>?
    var remoteAddress: UnsafePointer<CChar>?
    var userAgent: UnsafePointer<CChar>?
    var acceptEncoding: UnsafePointer<CChar>?
    var countryCode: UnsafePointer<CChar>?
    var countryName: UnsafePointer<CChar>?
    var databaseBuild: UnsafePointer<CChar>?
    var databaseType: UnsafePointer<CChar>?

    init(_ environment: FCGX_ParamArray?) {
        guard var cursor = environment else { return }
        while let entry = cursor.pointee {
            defer { cursor += 1 }
            switch UInt8(bitPattern: entry.pointee) {
            case UInt8(ascii: "R"):
                if let value = Self.value(entry, "REQUEST_METHOD=") { method = value }
                else if let value = Self.value(entry, "REQUEST_URI=") { uri = value }
                else if let value = Self.value(entry, "REMOTE_ADDR=") { remoteAddress = value }
            case UInt8(ascii: "H"):
                if let value = Self.value(entry, "HTTP_USER_AGENT=") { userAgent = value }
                else if let value = Self.value(entry, "HTTP_ACCEPT_ENCODING=") { acceptEncoding = value }
            case UInt8(ascii: "G"):
                if let value = Self.value(entry, "GEOIP_COUNTRY_CODE=") { countryCode = value }
                else if let value = Self.value(entry, "GEOIP_COUNTRY_NAME=") { countryName = value }
                else if let value = Self.value(entry, "GEOIP_DATABASE_BUILD=") { databaseBuild = value }
                else if let value = Self.value(entry, "GEOIP_DATABASE_TYPE=") { databaseType = value }
            default:
                break
            }
        }
    }

    /// The value of `entry` when it starts with `prefix` (`NAME=`).
    private static func value(_ entry: UnsafeMutablePointer<CChar>, _ prefix: StaticString) -> UnsafePointer<CChar>? {
        prefix.withUTF8Buffer { name in
            name.withMemoryRebound(to: CChar.self) { name in
                strncmp(entry, name.baseAddress!, name.count) == 0 ? UnsafePointer(entry + name.count) : nil
            }
        }
    }
}
