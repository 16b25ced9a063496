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
        let environment = request.pointee.envp
        func param(_ name: String) -> String? {
            FCGX_GetParam(name, environment).map { String(cString: $0) }
        }
        let userAgent = FCGX_GetParam("HTTP_USER_AGENT", environment).map {
            Array(UnsafeRawBufferPointer(start: $0, count: strlen($0)))
        }
        let response = router.respond(
            to: Request(
                method: param("REQUEST_METHOD") ?? "GET",
                uri: param("REQUEST_URI") ?? "/",
                remoteAddress: param("REMOTE_ADDR"),
                userAgent: userAgent ?? [],
                countryCode: param("GEOIP_COUNTRY_CODE"),
                countryName: param("GEOIP_COUNTRY_NAME")))
        let out = request.pointee.out
        var written = put(response.headerBlock, to: out)
        if response.sendsBody { written = written && put(response.body, to: out) }
        if !written {
            logger.debug("client went away before the answer was written")
        }
    }

    private func put(_ text: String, to stream: UnsafeMutablePointer<FCGX_Stream>?) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return true }
            return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                FCGX_PutStr($0, Int32(bytes.count), stream) == Int32(bytes.count)
            }
        }
    }
}
