import Foundation
import Synchronization
import Testing

@testable import VisitorCounter

struct NamedThreadTests {
    @Test func runsTheBodyOnAThreadOfItsOwnUnderItsName() async throws {
        let seen = Mutex<(name: String?, isMain: Bool)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.start(named: "test-thread") {
            // What ps -L and top -H show: the kernel's name of this thread.
            let comm = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            seen.withLock { $0 = (comm, Thread.isMainThread) }
            done.signal()
        }
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                #expect(done.wait(timeout: .now() + 10) == .success, "the thread never ran its body")
                continuation.resume()
            }
        }
        let result = try #require(seen.withLock { $0 })
        #expect(result.name == "test-thread\n")
        #expect(!result.isMain)
    }
}
