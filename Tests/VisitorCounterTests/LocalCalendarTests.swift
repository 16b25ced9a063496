import Foundation
import Testing

@testable import VisitorCounter

/// Local days in real zones, from the system's tz data: the hours either side of local midnight, both
/// changes of daylight-saving time in Berlin, and offsets of +05:45, +14 and -11.
struct LocalCalendarTests {
    private func date(_ text: String) -> Date { UTCTimestamp.parse(text)! }
    private func day(_ text: String) -> Int { UTCTimestamp.parseDay(text)! }

    @Test(arguments: [
        // zone, UTC instant, local date
        ("Europe/Berlin", "2026-11-24T22:59:59Z", "2026-11-24"),  // 23:59:59 CET
        ("Europe/Berlin", "2026-11-24T23:00:00Z", "2026-11-25"),  // midnight CET
        ("Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29"),  // midnight before the spring change
        ("Europe/Berlin", "2026-03-29T21:59:59Z", "2026-03-29"),  // 23:59:59 CEST, on the 23-hour day
        ("Europe/Berlin", "2026-03-29T22:00:00Z", "2026-03-30"),
        ("Europe/Berlin", "2026-10-24T22:00:00Z", "2026-10-25"),  // midnight CEST before the autumn change
        ("Europe/Berlin", "2026-10-25T22:59:59Z", "2026-10-25"),  // 23:59:59 CET, on the 25-hour day
        ("Asia/Kathmandu", "2026-11-24T18:14:59Z", "2026-11-24"),  // +05:45
        ("Asia/Kathmandu", "2026-11-24T18:15:00Z", "2026-11-25"),
        ("Asia/Kolkata", "2026-11-24T18:30:00Z", "2026-11-25"),  // +05:30
        ("Pacific/Kiritimati", "2026-11-24T09:59:59Z", "2026-11-24"),  // +14
        ("Pacific/Kiritimati", "2026-11-24T10:00:00Z", "2026-11-25"),
        ("Pacific/Pago_Pago", "2026-11-25T10:59:59Z", "2026-11-24"),  // -11
        ("Pacific/Pago_Pago", "2026-11-25T11:00:00Z", "2026-11-25"),
        ("UTC", "2026-11-24T23:59:59Z", "2026-11-24"),
    ])
    func anInstantFallsOnItsLocalDate(zone: String, instant: String, local: String) throws {
        let calendar = try #require(LocalCalendar(identifier: zone))
        #expect(calendar.day(date(instant)) == day(local))
    }

    @Test(arguments: [
        ("Europe/Berlin", "2026-03-29", "2026-03-28T23:00:00Z", 23),
        ("Europe/Berlin", "2026-10-25", "2026-10-24T22:00:00Z", 25),
        ("Europe/Berlin", "2026-11-25", "2026-11-24T23:00:00Z", 24),
        ("Asia/Kathmandu", "2026-11-25", "2026-11-24T18:15:00Z", 24),
        ("Pacific/Kiritimati", "2026-11-25", "2026-11-24T10:00:00Z", 24),
        ("Pacific/Pago_Pago", "2026-11-25", "2026-11-25T11:00:00Z", 24),
    ])
    func aLocalDayStartsAtLocalMidnightAndLastsItsRealLength(zone: String, local: String, start: String, hours: Int) throws {
        let calendar = try #require(LocalCalendar(identifier: zone))
        let interval = calendar.interval(ofDay: day(local))
        #expect(interval.lowerBound == date(start))
        #expect(interval.upperBound.timeIntervalSince(interval.lowerBound) == Double(hours) * 3600)
        #expect(calendar.day(interval.lowerBound) == day(local))
        #expect(calendar.day(interval.upperBound.addingTimeInterval(-1)) == day(local))
    }

    @Test(arguments: ["Europe/Berlinn", "", "CET", "GMT+2", "europe/berlin", "Mars/Olympus_Mons"])
    func aNameThatIsNoIANAZoneIsRefused(name: String) {
        #expect(LocalCalendar(identifier: name) == nil)
    }

    /// The writer's day finder, which keeps the current day's interval, answers what ``LocalCalendar/day(_:)``
    /// answers for every quarter hour across both changes of 2027 in Berlin and across days in +05:45
    /// and +14, visited in order, backwards and out of order.
    @Test(arguments: [
        ("Europe/Berlin", "2027-03-26T00:00:00Z"), ("Europe/Berlin", "2027-10-29T00:00:00Z"),
        ("Asia/Kathmandu", "2027-01-14T00:00:00Z"), ("Pacific/Kiritimati", "2027-01-14T00:00:00Z"),
        ("Pacific/Apia", "2011-12-28T00:00:00Z"),
    ])
    func theWritersDayFinderAgreesWithTheCalendar(zone: String, from: String) throws {
        let calendar = try #require(LocalCalendar(identifier: zone))
        let instants = (0..<(4 * 24 * 4)).map { date(from) + Double($0) * 900 + 7 }
        for order in [instants, instants.reversed(), instants.enumerated().sorted { ($0.offset * 37) % 101 < ($1.offset * 37) % 101 }.map(\.element)] {
            var days = LocalCalendar.Days(calendar)
            for instant in order { #expect(days.day(instant) == calendar.day(instant), "\(instant)") }
        }
    }

    @Test func utcIsTheCountersOldDays() {
        let now = date("2026-12-06T04:45:00Z")
        #expect(LocalCalendar.utc.day(now) == UTCTimestamp.day(now))
        #expect(LocalCalendar(identifier: "UTC") == .utc)
    }
}
