import Foundation
import Testing

@testable import VisitorCounter

struct NormalisationTests {
    @Test(arguments: [
        ("us", "US"), ("GB", "GB"), ("De", "DE"), ("", "XX"), ("A1", "XX"), ("O1", "XX"), ("USA", "XX"),
        ("U", "XX"), ("--", "XX"), ("É1", "XX"), ("ÉS", "XX"), (" us", "XX"), ("EU", "EU"),
    ])
    func countryCodes(raw: String, expected: String) {
        #expect(Visit.normalisedCountryCode(raw) == expected)
    }

    @Test func aMissingCountryCodeIsUnknown() {
        #expect(Visit.normalisedCountryCode(nil) == "XX")
    }

    @Test(arguments: [
        ("US", "United States", "United States"),
        ("US", nil, "United States"),
        ("US", "", "United States"),
        ("GB", "  United Kingdom ", "United Kingdom"),
        ("KR", "Korea, Republic of", "Korea, Republic of"),
        ("CI", "Cote D'Ivoire", "Cote D'Ivoire"),
        ("DE", "<script>alert(1)</script>", "Germany"),
        ("DE", "Deutschland\u{0}", "Germany"),
        ("FR", String(repeating: "a", count: 65), "France"),
        ("XX", nil, "Unknown"),
        ("QQ", nil, "Unknown"),
        ("XX", "Anonymous Proxy", "Anonymous Proxy"),
    ] as [(String, String?, String)])
    func countryNames(code: String, geoIPName: String?, expected: String) {
        #expect(Visit.countryName(code: code, geoIPName: geoIPName) == expected)
    }

    @Test(arguments: [
        (Array("Mozilla/5.0 (X11; Linux x86_64)".utf8), "Mozilla/5.0 (X11; Linux x86_64)"),
        ([], ""),
        (Array("curl/8.0\r\nX-Injected: 1".utf8), "curl/8.0X-Injected: 1"),
        (Array("tab\there\u{7F}\u{85}".utf8), "tabhere"),
        ([0x41, 0xFF, 0xFE, 0x42], "A\u{FFFD}\u{FFFD}B"),
        ([0x41, 0xC3], "A\u{FFFD}"),
        (Array("Ünïcödé 🚀".utf8), "Ünïcödé 🚀"),
    ])
    func userAgents(raw: [UInt8], expected: String) {
        #expect(Visit.normalisedUserAgent(raw) == expected)
    }

    @Test(arguments: [
        String(repeating: "a", count: 600),
        String(repeating: "é", count: 300),
        String(repeating: "🚀", count: 200),
        String(repeating: "👩‍👩‍👧", count: 100),
        "x" + String(repeating: "é", count: 300),
    ])
    func longUserAgentsAreCutAtACharacterBoundary(raw: String) {
        let result = Visit.normalisedUserAgent(Array(raw.utf8))
        #expect(result.utf8.count <= Visit.maxUserAgentBytes)
        #expect(result.utf8.count > Visit.maxUserAgentBytes - 20)
        #expect(raw.hasPrefix(result))
        #expect(result.last == raw.last)
    }

    @Test(arguments: [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::1", "::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("", nil), ("256.1.1.1", nil), ("192.0.2", nil), ("192.0.2.1 ", nil), ("example.com", nil),
        ("192.0.2.1, 10.0.0.1", nil), ("2001:db8::1%eth0", nil), ("<script>", nil),
    ] as [(String, String?)])
    func addresses(raw: String, expected: String?) {
        #expect(Visit.canonicalIP(raw) == expected)
    }

    @Test func aVisitIsNormalisedOnTheWayIn() {
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let visit = Visit(
            ip: "not an ip", userAgent: Array("ua\u{1}".utf8), countryCode: "gb", countryName: nil, time: time)
        #expect(visit == Visit(trustedIP: nil, userAgent: "ua", country: "United Kingdom", countryCode: "GB", time: time))
    }
}

struct UTCTimestampTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        (1_710_936_000.25, "2024-03-20T12:00:00Z", "2024-03-20T12:00:00.250Z"),
        (951_782_400, "2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
        (4_102_444_799.999, "2099-12-31T23:59:59Z", "2099-12-31T23:59:59.999Z"),
        (-1.5, "1969-12-31T23:59:58Z", "1969-12-31T23:59:58.500Z"),
    ])
    func formatsAndParses(seconds: Double, plain: String, precise: String) {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(UTCTimestamp.format(date) == plain)
        #expect(UTCTimestamp.format(date, milliseconds: true) == precise)
        #expect(UTCTimestamp.parse(precise) == Date(timeIntervalSince1970: (seconds * 1000).rounded(.down) / 1000))
    }

    /// The writer's formatter, which works out each second once, writes what `format` writes: times
    /// within one second, across seconds, days and years, backwards, before 1970 and past the ends.
    @Test func theMillisecondFormatterWritesWhatFormatWrites() {
        var formatter = UTCTimestamp.MillisecondFormatter()
        var seconds: [Double] = [0, 0.001, 0.999, 1, -0.001, -1.5, -86_400.25, 253_402_300_799.999, 1e15, -1e15, .nan]
        var time = 1_799_971_199.0
        for step in 0..<3_000 {
            time += [0.0003, 0.013, 0.7, 1.0, -2.5, 86_399.9][step % 6]
            seconds.append(time)
        }
        for value in seconds {
            let date = Date(timeIntervalSince1970: value)
            #expect(formatter.format(date) == UTCTimestamp.format(date, milliseconds: true), "at \(value)")
        }
    }

    @Test func matchesFoundation() {
        let formatter = ISO8601DateFormatter()
        for seconds in stride(from: 0.0, to: 4_000_000_000, by: 7_777_777.7) {
            let date = Date(timeIntervalSince1970: seconds.rounded())
            #expect(UTCTimestamp.format(date) == formatter.string(from: date))
        }
    }

    @Test(arguments: ["", "2024-03-20", "2024-13-20T12:00:00Z", "2024-03-20T12:00:00", "2024-03-20T12:00:00.5Z"])
    func rejectsOtherText(text: String) {
        #expect(UTCTimestamp.parse(text) == nil)
    }

    /// A minute starts at its first instant and ends just before the next; before 1970 it rounds down too.
    @Test(arguments: [
        (0.0, 0), (59.999, 0), (60, 1), (119.999, 1), (-0.001, -1), (-60, -1), (-60.001, -2),
        (1_800_000_000, 30_000_000), (1_800_000_059.999, 30_000_000), (1_800_000_060, 30_000_001),
    ])
    func minutesStartOnTheMinute(seconds: Double, minute: Int) {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(UTCTimestamp.minute(date) == minute)
        let visit = Visit(trustedIP: nil, userAgent: "", country: "Unknown", countryCode: "XX", time: date)
        #expect(visit.minute == minute)
    }

    /// The last minute of a UTC day and the first of the next fall on different days and minutes.
    @Test func aDayBoundaryChangesTheDayAndTheMinute() {
        let lastOfDay = Visit(
            trustedIP: nil, userAgent: "", country: "Unknown", countryCode: "XX",
            time: UTCTimestamp.parse("2026-11-24T23:59:59.999Z")!)
        var firstOfNext = lastOfDay
        firstOfNext.time = UTCTimestamp.parse("2026-11-25T00:00:00Z")!
        #expect(firstOfNext.minute == lastOfDay.minute + 1)
        #expect(firstOfNext.minute % 1440 == 0)
        #expect(lastOfDay.dayCountry(in: .utc) == DayCountry(day: UTCTimestamp.parseDay("2026-11-24")!, code: "XX"))
        #expect(firstOfNext.dayCountry(in: .utc) == DayCountry(day: UTCTimestamp.parseDay("2026-11-25")!, code: "XX"))
        // In Berlin (+01:00 in November) the last second of the UTC day is already the next local day.
        let berlin = LocalCalendar(identifier: "Europe/Berlin")!
        #expect(lastOfDay.dayCountry(in: berlin) == DayCountry(day: UTCTimestamp.parseDay("2026-11-25")!, code: "XX"))
    }
}
