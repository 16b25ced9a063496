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

        init(holdingTheAnswer: Bool = false, stats: VisitorStats = VisitorStats(totalVisitors: 1, countries: ["GB": 1], lastUpdated: nil)) throws {
            directory = try TemporaryDirectory()
            socketPath = directory.path("fcgi.sock")
            listening = try ListeningSocket.open(.unix(path: socketPath), mode: 0o600)
            let pages = RenderedPages(stats: stats, maxAge: 1)
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

    /// An answer longer than one record's 64 KiB goes out in several stdout records, and the kept
    /// connection takes the next request after it.
    @Test func anAnswerLongerThanARecordComesWholeAndTheConnectionGoesOn() async throws {
        let countries = Dictionary(uniqueKeysWithValues: (0..<10_000).map { (String(format: "Z%04d", $0), $0 + 1) })
        let responder = try Responder(stats: VisitorStats(totalVisitors: 10_000 * 10_001 / 2, countries: countries, lastUpdated: nil))
        let descriptor = try responder.connect()
        defer { close(descriptor) }
        for _ in 0..<2 {
            let answer = try #require(try FastCGIClient.exchange(descriptor, FastCGIClient.get("/api/sys/stats", keep: true)))
            let body = try #require(answer.range(of: "\r\n\r\n")).upperBound
            #expect(answer[body...].utf8.count > 2 * FastCGIAnswer.maxRecordContent)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(answer[body...].utf8)) as? [String: Any])
            #expect((json["countries"] as? [String: Int])?.count == 10_000)
            #expect((json["countries"] as? [String: Int])?["Z9999"] == 10_000)
        }
        // The index page, a visit: its header first, then its body in records of its own. The client
        // reads nothing until the recording has looked, so the header it finds is still there.
        _ = FastCGIClient.get("/", keep: true).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        try await waitUntil("the visit recorded", seconds: 10) {
            !responder.observations.headerSeenAtRecording.withLock { $0 }.isEmpty
        }
        let page = try #require(try FastCGIClient.exchange(descriptor, []))
        #expect(page.hasPrefix("Status: 200 OK\r\n"))
        #expect(page.hasSuffix("</html>\n") || page.hasSuffix("</html>"), "\(page.suffix(100))")
        #expect(responder.observations.headerSeenAtRecording.withLock { $0 } == [true])
    }

    @Test func theRecordsAreStdoutInPiecesThenTheEnds() {
        let records = FastCGIAnswer.records(70_000, ending: true, requestID: 0x0102)
        #expect(records == [
            1, 6, 1, 2, 0xFF, 0xF8, 0, 0,  // 65,528 bytes of stdout
            1, 6, 1, 2, 0x11, 0x78, 0, 0,  // the other 4,472
            1, 6, 1, 2, 0, 0, 0, 0,  // the stream's end
            1, 3, 1, 2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // the request's end: status 0, complete
        ])
        #expect(FastCGIAnswer.records(300, ending: false, requestID: 1) == [1, 6, 0, 1, 0x01, 0x2C, 0, 0])
        #expect(FastCGIAnswer.records(0, ending: false, requestID: 1) == [])
    }
}
