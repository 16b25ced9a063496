import Foundation

@testable import VisitorCounter

#if canImport(Glibc)
import Glibc
#endif

/// Client threads that send `GET /` through nginx until stopped (or until `limit` requests), each on a
/// connection of its own, rotating over addresses in several countries; it counts the whole answers
/// by status and the cut-off ones apart, and times them.
///
/// `@unchecked Sendable`: the counters sit behind `lock`; the threads only read constants otherwise.
final class LoadGenerator: @unchecked Sendable {
    struct Result {
        var statuses: [Int: Int]
        /// Requests that got no HTTP answer at all (connection refused or closed).
        var errors: Int
        /// Requests whose answer was cut off after its header (`isCutOff`): not in `statuses`.
        var cutOffTickets: Set<Int> = []
        var latencies: [Double]
        /// With `uniqueAgents`: the numbers of the requests that got a whole `200`.
        var answeredTickets: Set<Int> = []

        var ok: Int { statuses[200] ?? 0 }
        var requests: Int { statuses.values.reduce(0, +) + errors + cutOffTickets.count }
        var serverErrors: Int { statuses.filter { $0.key >= 500 }.values.reduce(0, +) }
        var maxLatency: Double { latencies.max() ?? 0 }
        var p99Latency: Double {
            let sorted = latencies.sorted()
            return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        }
        var summary: String {
            "\(requests) requests, statuses \(statuses.sorted { $0.key < $1.key }), \(errors) without answer, "
                + "\(cutOffTickets.count) cut off, "
                + String(format: "p99 %.1f ms, max %.1f ms", p99Latency * 1000, maxLatency * 1000)
        }
    }

    static let addresses = Array(EndToEndTests.knownAddresses.keys).sorted()

    private let stack: LocalStack
    private let clients: Int
    private let limit: Int
    private let headers: [String: String]
    private let uniqueAgents: Bool
    private var answeredTickets: Set<Int> = []
    private var cutOffTickets: Set<Int> = []
    private let lock = NSLock()
    private var statuses: [Int: Int] = [:]
    private var errors = 0
    private var latencies: [Double] = []
    private var sent = 0
    private var stopping = false
    private let group = DispatchGroup()

    /// - Parameter uniqueAgents: every request carries a user agent of its own (`… load/N`), so a test
    ///   can tell which answered visits are in the database, and that none is there twice.
    init(_ stack: LocalStack, clients: Int = 4, limit: Int = .max, headers: [String: String] = [:], uniqueAgents: Bool = false) {
        self.uniqueAgents = uniqueAgents
        self.stack = stack
        self.clients = clients
        self.limit = limit
        self.headers = headers
    }

    func start() {
        for client in 0..<clients {
            group.enter()
            let thread = Thread { [self] in
                var index = client
                while let ticket = nextTicket() {
                    var headers = self.headers
                    if uniqueAgents { headers["User-Agent"] = Self.agent(ticket) }
                    headers["X-Forwarded-For"] = Self.addresses[index % Self.addresses.count]
                    index += 1
                    let started = ContinuousClock.now
                    let response = try? stack.request("GET", "/", headers: headers)
                    let elapsed = ContinuousClock.now - started
                    let seconds = elapsed.inSeconds
                    lock.withLock {
                        switch response {
                        case nil: errors += 1
                        case let response? where response.isCutOff: cutOffTickets.insert(ticket)
                        case let response?:
                            statuses[response.status, default: 0] += 1
                            if response.status == 200 && uniqueAgents { answeredTickets.insert(ticket) }
                        }
                        latencies.append(seconds)
                    }
                }
                group.leave()
            }
            thread.start()
        }
    }

    private func nextTicket() -> Int? {
        lock.withLock {
            guard !stopping, sent < limit else { return nil }
            sent += 1
            return sent
        }
    }

    /// Answers so far.
    var ok: Int { lock.withLock { statuses[200] ?? 0 } }

    /// Stops the clients now and waits for them; nothing more once they have stopped.
    func cancel() {
        lock.withLock { stopping = true }
        group.wait()
    }

    /// Waits until `limit` requests are answered, or stops the clients now; returns what they saw.
    func stop() -> Result {
        if limit == .max { lock.withLock { stopping = true } }
        group.wait()
        return lock.withLock {
            Result(
                statuses: statuses, errors: errors, cutOffTickets: cutOffTickets, latencies: latencies,
                answeredTickets: answeredTickets)
        }
    }

    /// The user agent of request `ticket` with `uniqueAgents`.
    static func agent(_ ticket: Int) -> String { "\(LocalStack.browser) load/\(ticket)" }
}
