import Foundation
import Testing

@testable import VisitorCounter

/// What a batch writes, worked out without a database: ``BatchPlan`` is what both stores execute, and
/// `CounterStoreTests` checks that they do.
struct BatchPlanTests {
    /// 2027-01-15T01:00:00Z, an hour after midnight.
    static let time = Date(timeIntervalSince1970: 1_799_971_200 + 3_600)
    static let today = UTCTimestamp.day(time)
    static let keys: [Int: [UInt8]] = [today - 1: Array(1...16), today: Array(17...32)]

    static func visit(_ code: String, ip: String?, userAgent: String = "A", at time: Date) -> Visit {
        Visit(trustedIP: ip, userAgent: userAgent, country: "Name of \(code)", countryCode: code, time: time)
    }

    static func sealed(_ storedIP: String?, hash: UInt64?, at time: Date) -> Visit {
        var visit = Self.visit("US", ip: nil, at: time)
        visit.sealed = Visit.Sealed(storedIP: storedIP, visitorHash: hash)
        return visit
    }

    /// Rows of today, yesterday (a minute before midnight) and three days ago (no key, past the
    /// minutes kept), a visitor seen twice, two sealed visits, one visit without a row and two bots.
    static func batch() -> VisitBatch {
        var batch = VisitBatch(counting: [
            visit("US", ip: "203.0.113.1", at: time - 60),
            visit("US", ip: "203.0.113.1", at: time - 30),
            visit("GB", ip: "203.0.113.2", at: time - 3_660),
            visit("DE", ip: "203.0.113.3", at: time - 3_600 - 3 * 86_400),
            sealed("198.51.100.0", hash: 42, at: time - 10),
            sealed(nil, hash: nil, at: time - 10),
        ])
        batch.countWithoutRow(visit("FR", ip: "192.0.2.1", at: time))
        batch.countBot(visit("US", ip: "192.0.2.2", at: time))
        batch.countBot(visit("US", ip: "192.0.2.3", at: time))
        batch.journal = JournalSpan(id: "journal-1", start: 10, end: 17)
        return batch
    }

    @Test func rowsCarryTheStoredAddressAndTheTimeAsText() {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        #expect(plan.rows.map(\.ip) == ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.0", nil])
        #expect(
            plan.rows.map(\.timestamp) == [
                "2027-01-15T00:59:00.000Z", "2027-01-15T00:59:30.000Z", "2027-01-14T23:59:00.000Z",
                "2027-01-12T00:00:00.000Z", "2027-01-15T00:59:50.000Z", "2027-01-15T00:59:50.000Z",
            ])
        #expect(plan.rows.map(\.countryCode) == ["US", "US", "GB", "DE", "US", "US"])
        #expect(plan.rows.map(\.country) == ["Name of US", "Name of US", "Name of GB", "Name of DE", "Name of US", "Name of US"])
        #expect(plan.rows.allSatisfy { $0.userAgent == "A" })
    }

    @Test func candidatesAreEachVisitorOncePerDayWithAKey() {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        let today = BatchPlan.visitorHash(ip: "203.0.113.1", userAgent: "A", key: Self.keys[Self.today]!)
        let yesterday = BatchPlan.visitorHash(ip: "203.0.113.2", userAgent: "A", key: Self.keys[Self.today - 1]!)
        // The visitor seen twice once; three days ago has no key; the sealed visit without a hash none.
        #expect(
            Set(plan.uniqueCandidates)
                == [DayHash(day: Self.today, hash: today), DayHash(day: Self.today - 1, hash: yesterday), DayHash(day: Self.today, hash: 42)])
        #expect(plan.uniqueCandidates.count == 3)
        let order = plan.uniqueCandidates.map { [$0.day, Int(Int64(bitPattern: $0.hash))] }
        #expect(order == order.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(plan.uniqueCandidates.first?.day == Self.today - 1)
    }

    @Test func rollupsAreSortedAndCountRowsAndVisitsWithoutRows() {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        #expect(plan.countries.map(\.key) == ["DE", "FR", "GB", "US"])
        #expect(plan.countries.map(\.visitors) == [1, 1, 1, 4])
        #expect(plan.days.map(\.key) == [Self.today - 3, Self.today - 1, Self.today])
        #expect(plan.days.map(\.visitors) == [1, 1, 5])
        #expect(
            plan.dayCountries.map(\.key) == [
                DayCountry(day: Self.today - 3, code: "DE"), DayCountry(day: Self.today - 1, code: "GB"),
                DayCountry(day: Self.today, code: "FR"), DayCountry(day: Self.today, code: "US"),
            ])
        #expect(plan.dayCountries.map(\.visitors) == [1, 1, 1, 4])
    }

    @Test func minutesPastTheKeptWindowAreDropped() {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        let now = UTCTimestamp.minute(Self.time)
        #expect(plan.oldestMinuteKept == now - 24 * 60)
        // 23:59 yesterday; 00:59 (two rows and two sealed); 01:00 (the visit without a row). Three days
        // ago is gone.
        #expect(plan.minutes.map(\.key) == [now - 61, now - 1, now])
        #expect(plan.minutes.map(\.visitors) == [1, 4, 1])
        // A minute exactly at the edge goes too; one after it stays.
        var batch = VisitBatch(counting: [
            Self.visit("US", ip: nil, at: Self.time - 86_400), Self.visit("US", ip: nil, at: Self.time - 86_340),
        ])
        batch.journal = nil
        let edge = BatchPlan(batch, at: Self.time, keys: [:], storeIP: .full, spillID: nil)
        #expect(edge.minutes.map(\.key) == [now - 24 * 60 + 1])
        // What goes into `minute_visitors` is what goes into the minutes: the dropped minute's visits not.
        #expect(edge.stats.minuteVisitors == 1 && edge.stats.total == 2)
    }

    @Test func statsDeltasLeaveBotsAndTheOwnersRequestsOutOfTheTotal() {
        var batch = Self.batch()
        batch.ignored = 3
        let plan = BatchPlan(batch, at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        #expect(
            plan.stats == BatchPlan.StatsDelta(
                total: 7, withoutRows: 1, bots: 2, ignored: 3, minuteVisitors: 6, lastUpdated: "2027-01-15T01:00:00Z"))
        #expect(plan.forgetBefore == Self.today - 1)
        // The minutes' 6: the visit of three days ago is in no kept minute. The owner's requests are in
        // no rollup.
        #expect(plan.countries.reduce(0) { $0 + $1.visitors } == 7)
        #expect(plan.days.reduce(0) { $0 + $1.visitors } == 7)
    }

    @Test func guardsAreTheJournalsSpanAndTheSpillFile() {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: "spill-7")
        #expect(plan.journal == JournalSpan(id: "journal-1", start: 10, end: 17))
        #expect(plan.spillID == "spill-7")
        var batch = Self.batch()
        // A span that holds no record guards nothing.
        batch.journal = JournalSpan(id: "journal-1", start: 17, end: 17)
        let empty = BatchPlan(batch, at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil)
        #expect(empty.journal == nil)
        #expect(empty.spillID == nil)
    }

    @Test func keyDaysAreTheRowsDaysAroundToday() {
        var batch = Self.batch()
        batch.visits.append(Self.visit("US", ip: nil, at: Self.time + 86_400))
        // Visits without rows need no key: only rows are hashed.
        batch.countWithoutRow(Self.visit("US", ip: nil, at: Self.time + 2 * 86_400))
        #expect(BatchPlan.keyDays(of: batch, at: Self.time) == [Self.today - 1, Self.today, Self.today + 1])
        #expect(BatchPlan.keyDays(of: VisitBatch(), at: Self.time) == [])
    }

    @Test(arguments: StoreIPMode.allCases) func addressesAreStoredAsTheModeSays(mode: StoreIPMode) {
        let plan = BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: mode, spillID: nil)
        let ips = plan.rows.map(\.ip)
        // A sealed visit's address is stored as it was sealed, in every mode.
        #expect(ips[4] == "198.51.100.0")
        #expect(ips[5] == nil)
        switch mode {
        case .full: #expect(Array(ips[0..<4]) == ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.3"])
        case .truncated: #expect(Array(ips[0..<4]) == ["203.0.113.0", "203.0.113.0", "203.0.113.0", "203.0.113.0"])
        case .hashed:
            // 16 hex digits under the day's key: the same address the same on one day, another under
            // yesterday's key; no key three days ago, so nothing.
            #expect(ips[0] == ips[1])
            #expect(ips[0]?.count == 16 && ips[0]?.allSatisfy(\.isHexDigit) == true)
            #expect(ips[0] != ips[2])
            #expect(ips[2]?.count == 16)
            #expect(ips[3] == nil)
            let yesterday = BatchPlan(
                VisitBatch(counting: [Self.visit("US", ip: "203.0.113.1", at: Self.time - 3_660)]), at: Self.time, keys: Self.keys,
                storeIP: .hashed, spillID: nil)
            #expect(yesterday.rows[0].ip != ips[0])
        case .none: #expect(Array(ips[0..<4]) == [nil, nil, nil, nil])
        }
        // The candidates do not depend on the mode.
        #expect(plan.uniqueCandidates == BatchPlan(Self.batch(), at: Self.time, keys: Self.keys, storeIP: .full, spillID: nil).uniqueCandidates)
    }

    /// The visitor hash is fed in pieces; it must stay the hash of the string it once built, or every
    /// visitor already counted today would count again after an upgrade.
    @Test func theVisitorHashIsTheHashOfTheBuiltString() {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["", "a", "203.0.113.7", "2001:db8::1", "Mozilla/5.0 (X11; Linux x86_64)", "é", "日本語", "\n", "\u{0}"]
        for round in 0..<5_000 {
            let key = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Lengths across the 8-byte word boundaries, up to the longest user agent kept.
            let length = round % 600
            let userAgent = String(
                (0..<length).map { _ in Character(UnicodeScalar(UInt8.random(in: 32...126, using: &generator))) })
                + pieces[round % pieces.count]
            let ip: String? = round % 7 == 0 ? nil : pieces[(round / 3) % pieces.count] + String(round)
            let built = previousSipHash(Array("visitor\n\(ip ?? "")\n\(userAgent)".utf8), key: key)
            #expect(BatchPlan.visitorHash(ip: ip, userAgent: userAgent, key: key) == built, "ip \(String(describing: ip)), round \(round)")
        }
    }
}

/// `SipHash.hash` as it was before it was fed in pieces, kept word for word to check that the hashes
/// did not change.
private func previousSipHash(_ message: some Sequence<UInt8>, key: [UInt8]) -> UInt64 {
    let k0 = key[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    let k1 = key[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
    var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
    var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
    var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1
    func rotated(_ value: UInt64, _ count: UInt64) -> UInt64 { (value << count) | (value >> (64 - count)) }
    func round() {
        v0 &+= v1; v1 = rotated(v1, 13); v1 ^= v0; v0 = rotated(v0, 32)
        v2 &+= v3; v3 = rotated(v3, 16); v3 ^= v2
        v0 &+= v3; v3 = rotated(v3, 21); v3 ^= v0
        v2 &+= v1; v1 = rotated(v1, 17); v1 ^= v2; v2 = rotated(v2, 32)
    }
    func compress(_ word: UInt64) {
        v3 ^= word
        round()
        round()
        v0 ^= word
    }
    var word: UInt64 = 0
    var length = 0
    for byte in message {
        word |= UInt64(byte) << (8 * UInt64(length % 8))
        length += 1
        if length % 8 == 0 {
            compress(word)
            word = 0
        }
    }
    compress(word | UInt64(length & 0xff) << 56)
    v2 ^= 0xff
    for _ in 0..<4 { round() }
    return v0 ^ v1 ^ v2 ^ v3
}

/// `rebuild-days` keeps a day's pages to the writer's bound: the most visited, the rest under `(other)`.
struct DayCountsTests {
    @Test func aRebuiltDayKeepsItsMostVisitedPagesAndAddsTheRestToOther() {
        let day = 20_000
        var counts: [DayKey: Int] = [:]
        for index in 0..<(BatchPlan.maxKeysPerDay + 2) { counts[DayKey(day: day, key: "/page-\(index)")] = index + 1 }
        counts[DayKey(day: day + 1, key: "/")] = 5
        let bounded = DayCounts.bounded(counts)
        #expect(bounded.count == BatchPlan.maxKeysPerDay + 2)
        // The two least visited, 1 and 2 visits, are in (other); every visit is still counted.
        #expect(bounded[DayKey(day: day, key: BatchPlan.otherKey)] == 3)
        #expect(bounded[DayKey(day: day, key: "/page-0")] == nil && bounded[DayKey(day: day, key: "/page-1")] == nil)
        #expect(bounded[DayKey(day: day, key: "/page-2")] == 3)
        #expect(bounded[DayKey(day: day + 1, key: "/")] == 5)
        #expect(bounded.values.reduce(0, +) == counts.values.reduce(0, +))
    }
}

