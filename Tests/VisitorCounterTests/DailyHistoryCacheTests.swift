import Foundation
import Testing
import VisitorCounter

/// What ``DailyHistory`` keeps: answers bounded by bytes, gone when their period is over, and sent again
/// as the very bytes made the first time.
struct DailyHistoryCacheTests {
    /// `to - from + 1` days with `countries` countries each, as a busy site's rollup.
    private static func days(from: Int, to: Int, countries: Int) -> [DayStats] {
        (from...to).map { day in
            DayStats(
                date: UTCTimestamp.dayText(day), visitors: 1000 + day, uniqueVisitors: 500,
                countries: Dictionary(uniqueKeysWithValues: (0..<countries).map { ("C\($0)", $0 + day) }))
        }
    }

    @Test func whatIsKeptStaysWithinItsBytesAndTheOldestGoesFirst() throws {
        let oneAnswer = DailyHistory.Answer(days: Self.days(from: 0, to: 29, countries: 150)).bytes
        let reads = SharedCount(0)
        let history = DailyHistory(period: .seconds(600), maxConcurrentReads: 1, maxKeptBytes: oneAnswer * 3 + oneAnswer / 2) {
            from, to in
            reads.add(1)
            return Self.days(from: from, to: to, countries: 150)
        }
        for range in 0..<20 {
            _ = try history.days(from: range * 30, to: range * 30 + 29)
            let kept = history.kept
            #expect(kept.bytes <= history.maxKeptBytes, "\(kept) after \(range + 1) ranges")
            #expect(kept.answers == min(range + 1, 3), "\(kept) after \(range + 1) ranges")
        }
        #expect(reads.load() == 20)
        _ = try history.days(from: 19 * 30, to: 19 * 30 + 29)  // the newest: kept
        #expect(reads.load() == 20)
        _ = try history.days(from: 0, to: 29)  // the oldest: dropped for room, read again
        #expect(reads.load() == 21)
    }

    @Test func anAnswerLargerThanTheBudgetIsSentButNotKept() throws {
        let history = DailyHistory(period: .seconds(600), maxConcurrentReads: 1, maxKeptBytes: 1000) { from, to in
            Self.days(from: from, to: to, countries: 150)
        }
        let answer = try history.days(from: 0, to: 365)
        #expect(answer.plain.status == 200)
        #expect(answer.bytes > 1000)
        #expect(history.kept.bytes == 0 && history.kept.answers == 0)
    }

    @Test func expiredAnswersGoWithoutAnyRequestToDropThem() async throws {
        let reads = SharedCount(0)
        let history = DailyHistory(period: .milliseconds(200), maxConcurrentReads: 1) { from, to in
            reads.add(1)
            return Self.days(from: from, to: to, countries: 10)
        }
        for range in 0..<5 { _ = try history.days(from: range, to: range + 10) }
        #expect(history.kept.answers >= 1)
        // No request comes: the sweep alone empties the cache once the period is over.
        try await waitUntil("every expired answer dropped", seconds: 60) { history.kept == (0, 0) }
        _ = try history.days(from: 0, to: 10)
        #expect(reads.load() == 6)
        try await waitUntil("the answer kept again dropped again", seconds: 60) { history.kept == (0, 0) }
    }

    @Test func aKeptAnswerIsTheSameBytesNotEncodedAgain() throws {
        let reads = SharedCount(0)
        let history = DailyHistory(period: .seconds(600), maxConcurrentReads: 1) { from, to in
            reads.add(1)
            return Self.days(from: from, to: to, countries: 150)
        }
        let first = try history.days(from: 100, to: 465)
        let second = try history.days(from: 100, to: 465)
        #expect(reads.load() == 1)
        let firstPlain = try #require(first.plain.encoded?.bytes)
        let secondPlain = try #require(second.plain.encoded?.bytes)
        #expect(firstPlain == secondPlain)
        // The same storage, not an equal copy: the hit made no bytes of its own.
        #expect(firstPlain.withUnsafeBufferPointer { $0.baseAddress } == secondPlain.withUnsafeBufferPointer { $0.baseAddress })
        let firstGzip = try #require(first.gzip?.encoded?.bytes)
        let secondGzip = try #require(second.gzip?.encoded?.bytes)
        #expect(firstGzip.withUnsafeBufferPointer { $0.baseAddress } == secondGzip.withUnsafeBufferPointer { $0.baseAddress })
        // The gzip copy is the same JSON, and the router sends each to the client that asked for it.
        #expect(try gunzip(try #require(second.gzip?.binaryBody)) == second.plain.body)
        #expect(second.plain.body.hasPrefix(#"{"days": [{"date": "1970-04-11", "visitors": 1100, "#))
        let router = Router(pages: { fatalError("not read") }, daily: { try history.days(from: $0, to: $1) })
        let path = "/api/sys/stats/daily?from=1970-04-11&to=1971-04-11"
        let gzipped = router.respond(to: Request(method: "GET", uri: path, acceptsGzip: true))
        #expect(gzipped.header("Content-Encoding") == "gzip")
        #expect(gzipped.wireBytes.elementsEqual(secondGzip))
        let plain = router.respond(to: Request(method: "GET", uri: path))
        #expect(plain.header("Content-Encoding") == nil)
        #expect(plain.wireBytes.elementsEqual(secondPlain))
        #expect(reads.load() == 1)
    }
}

extension DailyHistoryCacheTests {
    /// The answer is written without building `JSON` values, but reads exactly as they would write it.
    @Test func theAnswerIsTheTextJSONWouldWrite() {
        let days = [
            DayStats(date: "2026-11-01", visitors: 3, uniqueVisitors: 2, countries: ["GB": 1, "US": 2, "FR": 1]),
            DayStats(date: "2026-11-02", visitors: 0, uniqueVisitors: 0, countries: [:]),
            DayStats(date: "2026-11-03", visitors: 7, uniqueVisitors: 7, countries: ["X\"\\\n": 7]),
        ]
        #expect(DailyHistory.Answer(days: days).plain.body == JSON.object([("days", .array(days.map(\.asJSON)))]).text)
        #expect(DailyHistory.Answer(days: []).plain.body == #"{"days": []}"#)
    }
}
