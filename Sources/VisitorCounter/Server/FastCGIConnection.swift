import CFastCGI
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One FastCGI connection a worker holds open, with the libfcgi request that reads it.
///
/// libfcgi's `FCGX_Accept_r` reads the next request from `ipcFd` when that is open, and accepts on
/// `listen_sock` only when it is not. So each connection gets an `FCGX_Request` of its own whose
/// `ipcFd` is the accepted descriptor and whose `listen_sock` is -1: libfcgi never accepts (the
/// worker does, and checks the peer first), and if it closes the connection (a protocol error, or
/// nginx did not ask to keep it) it answers an error instead of waiting on a socket.
///
/// A request has one deadline, ``requestTimeout`` after its first byte, over reading it and writing
/// its answer: the worker's timer shuts the socket down when it passes, which ends any read or write
/// libfcgi is blocked in. An idle connection can be shut down the same way (``shutIfIdle(since:)``).
/// Both go through ``control``, a second descriptor of the same socket that only this object closes:
/// libfcgi may close ``descriptor`` at any time, and its number may then name another connection.
///
/// `@unchecked Sendable`: the connection is registered in epoll with `EPOLLONESHOT`, so only the one
/// thread that took its event and claimed it (``claim(deadline:)``) touches `request` until it re-arms
/// it; the timer touches only the atomics and ``control``; the worker touches idle connections only
/// after every request thread has stopped.
final class FastCGIConnection: @unchecked Sendable {
    let descriptor: Int32
    let request: UnsafeMutablePointer<FCGX_Request>
    /// A duplicate of `descriptor` for `shutdown`, closed only by ``close()``.
    private let control: Int32
    /// ``State``: who holds the connection.
    private let state = Atomic<UInt8>(State.idle.rawValue)
    /// When the request being answered must end (``MonotonicTime``); 0 between requests.
    private let deadline = Atomic<Int64>(0)
    /// When the connection last finished a request, or was accepted.
    private let lastActive = Atomic<Int64>(MonotonicTime.now())

    private enum State: UInt8 {
        /// Waiting in epoll for nginx's next request.
        case idle
        /// A request thread is answering on it.
        case busy
        /// Shut down while idle; the next thread to see it closes it.
        case shut
    }

    /// How long a request may take from its first byte until its answer is written: a peer that
    /// stalls or trickles holds a thread for this long at most.
    static let requestTimeout: Duration = .seconds(10)

    init(descriptor: Int32) throws {
        control = try systemCall("fcntl", "F_DUPFD_CLOEXEC") { fcntl(descriptor, F_DUPFD_CLOEXEC, 0) }
        self.descriptor = descriptor
        request = .allocate(capacity: 1)
        FCGX_InitRequest(request, -1, 0)
        request.pointee.ipcFd = descriptor
        // FCGX_Accept_r first finishes the previous request and closes the connection unless it was
        // kept: a fresh connection has no previous request, and must stay open.
        request.pointee.keepConnection = 1
        // A last bound for each read and write, should the timer itself be held up.
        var timeout = timeval(tv_sec: Int(Self.requestTimeout.components.seconds), tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            _ = try systemCall("setsockopt", option == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO") {
                setsockopt(descriptor, SOL_SOCKET, option, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
        }
    }

    deinit {
        FCGX_Free(request, 0)
        request.deallocate()
    }

    /// libfcgi closed the descriptor itself.
    var isClosedByLibrary: Bool { request.pointee.ipcFd < 0 }

    /// Takes the connection for a request that must end by `deadline`; `false` when the timer shut it
    /// down while it was idle, and it must be closed.
    func claim(deadline: Int64) -> Bool {
        guard state.compareExchange(expected: State.idle.rawValue, desired: State.busy.rawValue, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        self.deadline.store(deadline, ordering: .releasing)
        return true
    }

    /// Gives the connection back after its answer: idle again, from now.
    func release() {
        deadline.store(0, ordering: .releasing)
        lastActive.store(MonotonicTime.now(), ordering: .relaxed)
        state.store(State.idle.rawValue, ordering: .releasing)
    }

    /// When the connection last finished a request; `nil` while a request thread holds it.
    var idleSince: Int64? {
        state.load(ordering: .acquiring) == State.idle.rawValue ? lastActive.load(ordering: .relaxed) : nil
    }

    /// Shuts the socket down when its request has passed its deadline; whether it did.
    func shutIfOverdue(now: Int64) -> Bool {
        let due = deadline.load(ordering: .acquiring)
        guard due != 0, now > due,
            deadline.compareExchange(expected: due, desired: 0, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        // Ignored on purpose, here and below: it fails only when the peer is gone already
        // (`ENOTCONN`), which is what the shutdown was for.
        _ = shutdown(control, Int32(SHUT_RDWR))
        return true
    }

    /// Shuts the socket down when it has been idle since `cutoff` or before (any idle connection for
    /// `.max`); whether it did. The epoll event this raises takes it to a request thread, which
    /// closes it.
    func shutIfIdle(since cutoff: Int64) -> Bool {
        guard let since = idleSince, since <= cutoff,
            state.compareExchange(expected: State.idle.rawValue, desired: State.shut.rawValue, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        _ = shutdown(control, Int32(SHUT_RDWR))
        return true
    }

    /// What is waiting on the connection.
    enum Inspection: Equatable {
        /// A whole request that libfcgi may read.
        case request
        /// nginx closed the connection.
        case closed
        /// The records must not reach libfcgi: why.
        case rejected(String)
    }

    /// Peeks at the records waiting (``FastCGIRecordCheck``), growing `buffer` as far as the request
    /// needs up to twice ``FastCGIRecordCheck/maxParamBytes``, and waiting until `deadline` for the rest
    /// of a request that arrives in pieces.
    func inspect(buffer: inout [UInt8], deadline: Int64) -> Inspection {
        while true {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT))
            }
            if count == 0 { return .closed }
            if count < 0 {
                guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return .closed }
                guard MonotonicTime.now() < deadline else { return .rejected("no request arrived") }
                usleep(1000)
                continue
            }
            let check = buffer.withUnsafeBytes { FastCGIRecordCheck.check(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            switch check {
            case .acceptable:
                return .request
            case .rejected(let reason):
                return .rejected(reason)
            case .incomplete where count == buffer.count:
                guard buffer.count < FastCGIRecordCheck.maxParamBytes * 2 else {
                    return .rejected("the request is longer than \(FastCGIRecordCheck.maxParamBytes * 2) bytes")
                }
                buffer += [UInt8](repeating: 0, count: buffer.count)
            case .incomplete:
                guard MonotonicTime.now() < deadline else {
                    return .rejected("the request did not arrive whole within \(Self.requestTimeout)")
                }
                usleep(1000)
            }
        }
    }

    /// Closes the connection. What nginx sent and nobody read is read first, so the close is a FIN and
    /// not a reset that could drop the last answer on its way.
    func close() {
        Glibc.close(control)
        guard !isClosedByLibrary else { return }
        var scratch = [UInt8](repeating: 0, count: 4096)
        while recv(descriptor, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
        Glibc.close(descriptor)
        request.pointee.ipcFd = -1
    }
}
