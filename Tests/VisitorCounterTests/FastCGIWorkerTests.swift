import Foundation
import Synchronization
import Testing

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// The responder in this process, on a unix socket of its own, spoken to by ``FastCGIClient``.
///
/// nginx passes a request on to another worker (`fastcgi_next_upstream`) only while no header has come
/// back from the first. A worker that recorded the visit and died before its header would have the
/// request recorded twice: by its journal, and by the worker nginx tried next. So the header goes out
/// first, and the visit is recorded after it.
struct FastCGIWorkerTests {
    /// What the worker's threads note for the test.
    final class Observations: Sendable {
        /// The client's descriptor, which the recording peeks at.
        let client = Atomic<Int32>(-1)
        /// For each visit recorded: whether the answer's header had reached the client by then.
        let headerSeenAtRecording = Mutex<[Bool]>([])
    }

    final class Responder {
        let directory: TemporaryDirectory
        let socketPath: String
        let listening: ListeningSocket
        let worker: FastCGIWorker
        let observations = Observations()
        /// Signalled by a test to let `pages()`, and so the answer, go on.
        let answerMayGoOn: DispatchSemaphore?

        init(holdingTheAnswer: Bool = false) throws {
            directory = try TemporaryDirectory()
            socketPath = directory.path("fcgi.sock")
            listening = try ListeningSocket.open(.unix(path: socketPath), mode: 0o600)
            let pages = RenderedPages(stats: VisitorStats(totalVisitors: 1, countries: ["GB": 1], lastUpdated: nil), maxAge: 1)
            let gate = holdingTheAnswer ? DispatchSemaphore(value: 0) : nil
            answerMayGoOn = gate
            let observations = observations
            worker = try FastCGIWorker(
                listeningDescriptor: listening.descriptor, threadCount: 1,
                router: Router(pages: {
                    gate?.wait()
                    return pages
                }),
                recordVisit: { _ in
                    // Readable means the worker has written something: nothing but the header comes first.
                    var ready = pollfd(
                        fd: observations.client.load(ordering: .sequentiallyConsistent), events: Int16(POLLIN), revents: 0)
                    observations.headerSeenAtRecording.withLock { $0.append(poll(&ready, 1, 5000) == 1) }
                },
                logger: quietLogger)
            // FCGX_Init's handlers only set a flag: this process's SIGTERM must still end it, and a write
            // to a client that went away must fail with EPIPE, not end it.
            Signals.undoLibraryHandlers()
            Signals.ignoreBrokenPipes()
            worker.start()
        }

        func connect() throws -> Int32 {
            let descriptor = try FastCGIClient.connect(unix: socketPath)
            observations.client.store(descriptor, ordering: .sequentiallyConsistent)
            return descriptor
        }

        deinit {
            worker.stop()
            close(listening.descriptor)
        }
    }

    @Test func aVisitIsRecordedOnlyOnceItsHeaderIsOnItsWay() async throws {
        let responder = try Responder()
        let descriptor = try responder.connect()
        defer { close(descriptor) }
        // The client reads nothing until the recording has looked, so what it finds is still there.
        _ = FastCGIClient.get("/", keep: true).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        try await waitUntil("the visit recorded", seconds: 10) {
            !responder.observations.headerSeenAtRecording.withLock { $0 }.isEmpty
        }
        let answer = try #require(try FastCGIClient.exchange(descriptor, []))
        #expect(answer.hasPrefix("Status: 200 OK\r\n"))
        #expect(answer.contains("<!doctype html>") || answer.contains("<!DOCTYPE html>"), "\(answer.prefix(300))")
        #expect(responder.observations.headerSeenAtRecording.withLock { $0 } == [true])
        // What counts no visit is sent whole, as before.
        let stats = try #require(try FastCGIClient.exchange(descriptor, FastCGIClient.get("/api/sys/stats", keep: true)))
        #expect(stats.contains("\r\n\r\n{\"total_visitors\": 1, \"countries\": {\"GB\": 1}"), "\(stats)")
        #expect(responder.observations.headerSeenAtRecording.withLock { $0 }.count == 1)
    }

    @Test func aHeaderThatCannotBeSentRecordsNoVisit() async throws {
        let responder = try Responder(holdingTheAnswer: true)
        let descriptor = try responder.connect()
        _ = FastCGIClient.get("/").withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // The client (nginx that gave up on this worker) is gone before the answer is written.
        close(descriptor)
        responder.answerMayGoOn?.signal()
        try await waitUntil("the request to be finished", seconds: 10) { responder.worker.answered == 1 }
        #expect(responder.observations.headerSeenAtRecording.withLock { $0 }.isEmpty)
    }
}
