import CFastCGI
import Foundation

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
/// `@unchecked Sendable`: the connection is registered in epoll with `EPOLLONESHOT`, so only the one
/// thread that took its event touches `request` until it re-arms it; the worker touches idle
/// connections only after every request thread has stopped.
final class FastCGIConnection: @unchecked Sendable {
    let descriptor: Int32
    let request: UnsafeMutablePointer<FCGX_Request>

    /// How long a request that has begun may take to arrive whole, and an answer to be taken by nginx,
    /// before the connection is closed: a peer that stalls holds a thread for this long at most.
    static let stallTimeout: Duration = .seconds(10)

    init(descriptor: Int32) {
        self.descriptor = descriptor
        request = .allocate(capacity: 1)
        FCGX_InitRequest(request, -1, 0)
        request.pointee.ipcFd = descriptor
        // FCGX_Accept_r first finishes the previous request and closes the connection unless it was
        // kept: a fresh connection has no previous request, and must stay open.
        request.pointee.keepConnection = 1
        var timeout = timeval(tv_sec: Int(Self.stallTimeout.components.seconds), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        FCGX_Free(request, 0)
        request.deallocate()
    }

    /// libfcgi closed the descriptor itself.
    var isClosedByLibrary: Bool { request.pointee.ipcFd < 0 }

    /// What is waiting on the connection.
    enum Inspection: Equatable {
        /// A request whose params libfcgi may read.
        case request
        /// nginx closed the connection.
        case closed
        /// The records must not reach libfcgi: why.
        case rejected(String)
    }

    /// Peeks at the records waiting (``FastCGIRecordCheck``), growing `buffer` as far as the params
    /// need up to ``FastCGIRecordCheck/maxParamBytes``, and waiting up to ``stallTimeout`` for the
    /// rest of a request that arrives in pieces.
    func inspect(buffer: inout [UInt8]) -> Inspection {
        let deadline = ContinuousClock.now + Self.stallTimeout
        while true {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT))
            }
            if count == 0 { return .closed }
            if count < 0 {
                guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return .closed }
                guard ContinuousClock.now < deadline else { return .rejected("no request arrived") }
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
                    return .rejected("the params are longer than \(FastCGIRecordCheck.maxParamBytes * 2) bytes")
                }
                buffer += [UInt8](repeating: 0, count: buffer.count)
            case .incomplete:
                guard ContinuousClock.now < deadline else {
                    return .rejected("the request did not arrive whole within \(Self.stallTimeout)")
                }
                usleep(1000)
            }
        }
    }

    /// Closes a connection libfcgi has not closed. What nginx sent and nobody read is read first, so the
    /// close is a FIN and not a reset that could drop the last answer on its way.
    func close() {
        guard !isClosedByLibrary else { return }
        var scratch = [UInt8](repeating: 0, count: 4096)
        while recv(descriptor, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
        Glibc.close(descriptor)
        request.pointee.ipcFd = -1
    }
}
