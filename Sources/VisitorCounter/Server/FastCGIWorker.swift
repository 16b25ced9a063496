import CFastCGI
import CLinuxEvents
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One worker process's connections and request threads.
///
/// The listening socket, every FastCGI connection the worker holds and a stop descriptor sit in one
/// `epoll` set. A fixed pool of request threads waits on the set; each takes whichever connection has
/// a request waiting, answers it through libfcgi and the ``Router``, and gives the connection back to
/// the set. Connections are registered with `EPOLLONESHOT`, so exactly one thread wakes for a request
/// and nobody else touches the connection until it is re-armed. nginx's kept connections (`keepalive`
/// in its upstream) therefore cost a descriptor each while idle, not a thread: a request sent on any
/// of them is read by the next free thread.
///
/// The listening socket is shared with the other workers and non-blocking: a worker that lost the
/// race for a new connection gets `EAGAIN`. A stop finishes the requests that are in flight or
/// already waiting, closes the connections that are idle, and returns.
///
/// Nothing a peer does holds a thread or a descriptor for long: a timer thread shuts down a
/// connection whose request passed its deadline (``FastCGIConnection/requestTimeout``) and one idle
/// for longer than ``idleTimeout``, and at ``maxConnections`` a new connection pushes out the one idle
/// the longest. The request threads call `heartbeat` at least once a second while they are free to
/// take requests, so the supervisor can tell a worker that stopped answering.
public final class FastCGIWorker: Sendable {
    private let listeningDescriptor: Int32
    private let threadCount: Int
    private let router: Router
    private let recordVisit: @Sendable (Visit) -> Void
    private let allowList: PeerAllowList?
    private let logger: Logger
    private let poll: Int32
    /// An `eventfd` that becomes readable, and stays so, when a stop is asked for.
    private let stopDescriptor: Int32
    private let stopping = Atomic<Bool>(false)
    /// Every open connection, so a stop can close the idle ones; keyed by identity, as a descriptor
    /// number is reused as soon as libfcgi closes one.
    private let connections = Mutex<[ObjectIdentifier: FastCGIConnection]>([:])
    private let threads = DispatchGroup()
    private let timer = DispatchGroup()
    /// Set once the request threads have ended, so the timer, which bounds their requests, ends after them.
    private let requestThreadsEnded = Atomic<Bool>(false)
    private let requestsAnswered = Atomic<Int>(0)
    private let heartbeat: @Sendable () -> Void
    private let maxConnections: Int
    private let idleTimeout: Duration

    /// How long nginx may leave a kept connection unused before the worker closes it: above nginx's own
    /// `keepalive_timeout` for upstreams (60 s by default), so nginx closes first, and nginx sends a
    /// request again on a fresh connection when a kept one turns out closed.
    public static let defaultIdleTimeout: Duration = .seconds(300)
    /// Connections one worker holds at most: far above what nginx keeps (`keepalive` in its upstream,
    /// per nginx worker), and with two descriptors each well below the unit's `LimitNOFILE=65536`.
    public static let defaultMaxConnections = 4096
    /// What a request thread peeks at first: nginx's requests fit, larger ones grow it for a while.
    static let peekBufferSize = 16384
    /// How often the timer looks at the connections.
    static let timerInterval: Duration = .milliseconds(250)

    /// The `epoll` tokens of the two descriptors that are not connections (whose token is their address).
    private static let stopToken: UInt64 = 0
    private static let listenerToken: UInt64 = 1
    /// The events a stopping thread takes at once: enough to see whether any request is still waiting.
    private static let drainBatch: Int32 = 64

    /// - Parameters:
    ///   - recordVisit: counts the visit an answer carries (``Response/visit``), called once its header
    ///     has been sent.
    ///   - allowList: the peers a TCP socket accepts (`--allowed-clients`); `nil` accepts any.
    ///   - heartbeat: called by the request threads between requests, at least once a second each.
    public init(
        listeningDescriptor: Int32, threadCount: Int, router: Router, recordVisit: @escaping @Sendable (Visit) -> Void,
        allowList: PeerAllowList? = nil, heartbeat: @escaping @Sendable () -> Void = {},
        maxConnections: Int = FastCGIWorker.defaultMaxConnections, idleTimeout: Duration = FastCGIWorker.defaultIdleTimeout,
        logger: Logger
    ) throws {
        guard FCGX_Init() == 0 else { throw SystemCallError(call: "FCGX_Init", subject: nil, errno: errno) }
        poll = try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        stopDescriptor = try systemCall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) }
        self.listeningDescriptor = listeningDescriptor
        self.threadCount = threadCount
        self.router = router
        self.recordVisit = recordVisit
        self.allowList = allowList
        self.heartbeat = heartbeat
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.logger = logger
        try register(stopDescriptor, token: Self.stopToken, events: EPOLLIN.rawValue, add: true)
        try register(listeningDescriptor, token: Self.listenerToken, events: EPOLLIN.rawValue | EPOLLONESHOT.rawValue, add: true)
    }

    /// The request threads hold the worker while they run, so this comes after they have ended.
    deinit {
        close(poll)
        close(stopDescriptor)
    }

    /// Starts the request threads and their timer.
    public func start() {
        for index in 0..<threadCount {
            threads.enter()
            Thread.start(named: "fastcgi-\(index)") { [self] in
                serveConnections()
                threads.leave()
            }
        }
        timer.enter()
        Thread.start(named: "fastcgi-timer") { [self] in
            while !requestThreadsEnded.load(ordering: .acquiring) {
                usleep(UInt32(Self.timerInterval.inNanoseconds / 1000))
                shutOverdueConnections()
            }
            timer.leave()
        }
    }

    /// Shuts down the connections whose request passed its deadline, and those idle too long.
    private func shutOverdueConnections() {
        let now = MonotonicTime.now()
        let idleCutoff = now - idleTimeout.inNanoseconds
        var overdue = 0
        var idle = 0
        connections.withLock { connections in
            for connection in connections.values {
                if connection.shutIfOverdue(now: now) { overdue += 1 } else if connection.shutIfIdle(since: idleCutoff) { idle += 1 }
            }
        }
        if overdue > 0 {
            logger.warning(
                "closed connections whose request took longer than its deadline",
                metadata: ["connections.overdue": "\(overdue)", "deadline": "\(FastCGIConnection.requestTimeout)"])
        }
        if idle > 0 {
            logger.debug("closed idle connections", metadata: ["connections.idle": "\(idle)", "idle_timeout": "\(idleTimeout)"])
        }
    }

    /// Stops taking new connections, answers the requests in flight and those already waiting, closes
    /// the idle connections and returns.
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        // Logged and no more: the request threads look at `stopping` before they re-arm the listener,
        // so at most the one accept already woken still comes.
        do {
            try systemCall("epoll_ctl", "EPOLL_CTL_DEL listener") { epoll_ctl(poll, EPOLL_CTL_DEL, listeningDescriptor, nil) }
        } catch {
            logger.warning("cannot stop watching the listening socket", metadata: ["error": "\(error)"])
        }
        // An eventfd write of 8 bytes is whole or fails. If it fails, the threads still see `stopping`
        // within their epoll_wait timeout (1 s), so the stop is slower, not lost.
        var one: UInt64 = 1
        do {
            try systemCall("write", "eventfd") { write(stopDescriptor, &one, 8) }
        } catch {
            logger.error("cannot wake the request threads", metadata: ["error": "\(error)"])
        }
        threads.wait()
        requestThreadsEnded.store(true, ordering: .releasing)
        timer.wait()
        let idle = connections.withLock { connections in
            defer { connections.removeAll() }
            return Array(connections.values)
        }
        for connection in idle { connection.close() }
        if !idle.isEmpty { logger.debug("closed idle connections", metadata: ["connections.idle": "\(idle.count)"]) }
    }

    public var answered: Int { requestsAnswered.load(ordering: .relaxed) }

    /// A request thread: one event at a time while serving, so a thread never holds a waiting
    /// connection that another thread could answer; a batch once stopping, to see when nothing waits.
    private func serveConnections() {
        var events = [epoll_event](repeating: epoll_event(), count: Int(Self.drainBatch))
        var peekBuffer = [UInt8](repeating: 0, count: Self.peekBufferSize)
        while true {
            let stopping = stopping.load(ordering: .sequentiallyConsistent)
            let limit = stopping ? Self.drainBatch : 1
            let count = epoll_wait(poll, &events, limit, 1000)
            heartbeat()
            if count < 0 {
                if errno == EINTR { continue }
                logger.error("epoll_wait failed", metadata: ["error": "\(SystemCallError(call: "epoll_wait", subject: nil, errno: errno))"])
                return
            }
            var waiting = 0
            for event in events[0..<Int(count)] {
                switch event.data.u64 {
                case Self.stopToken:
                    break
                case Self.listenerToken:
                    acceptConnection()
                default:
                    waiting += 1
                    let connection = Unmanaged<FastCGIConnection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(event.data.u64))!)
                        .takeUnretainedValue()
                    serve(connection, buffer: &peekBuffer)
                }
            }
            if stopping && waiting == 0 && count < limit { return }
        }
    }

    /// Accepts one connection, closes it if its peer is not allowed, and adds it to the set. One at a
    /// time, so the next one can go to another thread or worker.
    private func acceptConnection() {
        guard !stopping.load(ordering: .sequentiallyConsistent) else { return }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let descriptor = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                accept(listeningDescriptor, $0, &length)
            }
        }
        if descriptor < 0 {
            let error = errno
            if error != EAGAIN && error != EWOULDBLOCK && error != EINTR && error != ECONNABORTED {
                // Out of descriptors, say: the socket stays readable, so pause instead of spinning.
                logger.warning(
                    "accepting a connection failed",
                    metadata: ["error": "\(SystemCallError(call: "accept", subject: nil, errno: error))"])
                usleep(100_000)
            }
        } else if let allowList, !allowList.allows(address) {
            logger.warning(
                "closed a connection from a peer not in --allowed-clients",
                metadata: ["peer": "\(PeerAllowList.describe(address))"])
            close(descriptor)
        } else {
            // Both logged and the connection kept: without TCP_NODELAY an answer may wait for an ACK,
            // and a worker starts no process that a descriptor without close-on-exec could reach.
            do {
                if Int32(address.ss_family) == AF_INET || Int32(address.ss_family) == AF_INET6 {
                    var on: Int32 = 1
                    try systemCall("setsockopt", "TCP_NODELAY") {
                        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                    }
                }
                try systemCall("fcntl", "F_SETFD FD_CLOEXEC") { fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
            } catch {
                logger.warning("cannot set an option of a new connection", metadata: ["error": "\(error)"])
            }
            do {
                let connection = try FastCGIConnection(descriptor: descriptor)
                let (full, pushedOut) = connections.withLock { connections in
                    defer { connections[ObjectIdentifier(connection)] = connection }
                    guard connections.count >= maxConnections else { return (false, false) }
                    return (true, pushOutLongestIdle(connections))
                }
                if full {
                    logger.warning(
                        "a connection more than the worker holds at most",
                        metadata: [
                            "connections.max": "\(maxConnections)",
                            "action": "\(pushedOut ? "closed the one idle longest" : "none idle: closed the new one")",
                        ])
                }
                if full && !pushedOut {
                    forget(connection)
                } else {
                    do {
                        try register(descriptor, token: token(connection), events: Self.connectionEvents, add: true)
                    } catch {
                        logger.warning("cannot watch a new connection", metadata: ["error": "\(error)"])
                        forget(connection)
                    }
                }
            } catch {
                logger.warning("cannot take a new connection", metadata: ["error": "\(error)"])
                close(descriptor)
            }
        }
        if !stopping.load(ordering: .sequentiallyConsistent) {
            do {
                try register(listeningDescriptor, token: Self.listenerToken, events: EPOLLIN.rawValue | EPOLLONESHOT.rawValue, add: false)
            } catch {
                // Logged at the highest level: the listener is one-shot, so this worker takes no new
                // connection from now on (the other workers still do).
                logger.critical("cannot watch the listening socket again: this worker takes no new connections", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Shuts down the connection idle the longest among `connections` (the new one is not among them
    /// yet); whether there was one. A thread may claim it meanwhile: then the next one is tried.
    private func pushOutLongestIdle(_ connections: [ObjectIdentifier: FastCGIConnection]) -> Bool {
        var idle = connections.values.compactMap { connection in connection.idleSince.map { (connection, $0) } }
        while let longest = idle.indices.min(by: { idle[$0].1 < idle[$1].1 }) {
            if idle[longest].0.shutIfIdle(since: .max) { return true }
            idle.remove(at: longest)
        }
        return false
    }

    /// Answers the request waiting on `connection`, then gives the connection back to the set, or
    /// closes it when nginx did not keep it, it broke, or the worker is stopping.
    private func serve(_ connection: FastCGIConnection, buffer: inout [UInt8]) {
        let deadline = MonotonicTime.now() + FastCGIConnection.requestTimeout.inNanoseconds
        // The timer shut it down while it waited idle: what woke this thread is that shutdown.
        guard connection.claim(deadline: deadline) else { return forget(connection) }
        let inspection = connection.inspect(buffer: &buffer, deadline: deadline)
        // A large request grew the buffer: a thread does not keep megabytes for the next one.
        if buffer.count > Self.peekBufferSize { buffer = [UInt8](repeating: 0, count: Self.peekBufferSize) }
        switch inspection {
        case .request:
            break
        case .closed:
            return forget(connection)
        case .rejected(let reason):
            logger.warning("closed a FastCGI connection before libfcgi read it", metadata: ["reason": "\(reason)"])
            return forget(connection)
        }
        let request = connection.request
        let result = FCGX_Accept_r(request)
        guard result == 0 else {
            logger.debug("a FastCGI connection ended without a request", metadata: ["error": "\(-result)"])
            return forget(connection)
        }
        answer(request)
        // Reads what is left of the request's input, so the next request starts at a record's start
        // (into the stack: a kilobyte from malloc for every request made glibc consolidate its bins).
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 1024) { scratch in
            while FCGX_GetStr(scratch.baseAddress, Int32(scratch.count), request.pointee.in) > 0 {}
        }
        FCGX_Finish_r(request)
        connection.release()
        requestsAnswered.add(1, ordering: .relaxed)
        if connection.isClosedByLibrary || stopping.load(ordering: .sequentiallyConsistent) {
            return forget(connection)
        }
        do {
            try register(connection.descriptor, token: token(connection), events: Self.connectionEvents, add: false)
        } catch {
            logger.warning("cannot watch a connection again", metadata: ["error": "\(error)"])
            forget(connection)
        }
    }

    private static let connectionEvents = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue

    /// Closes the connection (unless libfcgi did) and drops it from the set.
    /// Out of the set first, then closed: the timer and the accept path shut connections down only
    /// while they hold the set's lock, so none of them can shut a descriptor number that a close has
    /// freed and an accept taken again.
    private func forget(_ connection: FastCGIConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
        connection.close()
    }

    private func token(_ connection: FastCGIConnection) -> UInt64 {
        UInt64(UInt(bitPattern: Unmanaged.passUnretained(connection).toOpaque()))
    }

    private func register(_ descriptor: Int32, token: UInt64, events: UInt32, add: Bool) throws {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        try systemCall("epoll_ctl", add ? "EPOLL_CTL_ADD" : "EPOLL_CTL_MOD") {
            epoll_ctl(poll, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, descriptor, &event)
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
                    databaseTypeBytes: params.databaseType.map { UnsafeRawBufferPointer(start: $0, count: strlen($0)) }),
                cookie: params.cookie.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? [],
                page: params.page.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) },
                referer: params.referer.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? [],
                // Only a referrer is compared with the site's host: a request without one copies none.
                host: params.referer == nil
                    ? [] : (params.host ?? params.serverName).map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? [],
                range: params.range.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) }))
        guard let visit = response.visit else {
            if !FastCGIAnswer.write(response.wireBytes, ending: true, to: request) {
                logger.debug("client went away before the answer was written")
            }
            return
        }
        // The header block goes out first, and the visit is recorded only once it has: nginx passes a
        // request on to another worker (fastcgi_next_upstream) only while no header has come back. Were
        // the visit recorded first, a worker that died before its header would have the request
        // recorded twice, by its journal and by the worker nginx tried next. The price: a worker that
        // dies between the header and the record leaves a cut-off answer (an error to the client, not
        // the page) uncounted. A header that cannot be sent means nginx gave up on this connection, and
        // may be asking another worker.
        let (header, body) = response.wireParts
        guard FastCGIAnswer.write(header, ending: false, to: request) else {
            logger.debug("nginx went away before the header was written: the visit is not recorded")
            return
        }
        recordVisit(visit)
        if !FastCGIAnswer.write(body, ending: true, to: request) {
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
    var cookie: UnsafePointer<CChar>?
    var countryCode: UnsafePointer<CChar>?
    var countryName: UnsafePointer<CChar>?
    var databaseBuild: UnsafePointer<CChar>?
    var databaseType: UnsafePointer<CChar>?
    var page: UnsafePointer<CChar>?
    var referer: UnsafePointer<CChar>?
    var host: UnsafePointer<CChar>?
    var serverName: UnsafePointer<CChar>?
    var range: UnsafePointer<CChar>?

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
                else if let value = Self.value(entry, "HTTP_COOKIE=") { cookie = value }
                else if let value = Self.value(entry, "HTTP_REFERER=") { referer = value }
                else if let value = Self.value(entry, "HTTP_HOST=") { host = value }
                else if let value = Self.value(entry, "HTTP_RANGE=") { range = value }
            case UInt8(ascii: "S"):
                if let value = Self.value(entry, "SERVER_NAME=") { serverName = value }
            case UInt8(ascii: "V"):
                if let value = Self.value(entry, "VISITOR_COUNTER_PAGE=") { page = value }
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
