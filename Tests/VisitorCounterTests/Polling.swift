import Foundation

/// The tests' one way to wait for something another thread or process does: tries `condition` every
/// 20 ms for up to `seconds`, and throws, naming `what`, when time runs out or when `process` has ended
/// (with its standard error, which usually says why).
///
/// It sleeps with `Task.sleep`, which gives the thread back: Swift Testing runs tests on the cooperative
/// pool, as wide as the machine's cores (two here), and a test that polled with `usleep` held one of
/// them, so that every other test waited for it.
func waitUntil(
    _ what: String, seconds: Double = 15, process: ChildProcess? = nil, _ condition: () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    var lastError: (any Error)?
    while true {
        do {
            if try condition() { return }
            lastError = nil
        } catch {
            lastError = error
        }
        if let process, !process.process.isRunning {
            throw TestFailure("\(what): the process ended: \(process.stderr)")
        }
        guard ContinuousClock.now < deadline else { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    let why = lastError.map { " (the last check threw \($0))" } ?? ""
    throw TestFailure("\(what) was not so after \(seconds) s\(why)" + (process.map { ": \($0.stderr)" } ?? ""))
}
