import Foundation

/// Fixed-width ISO-8601 UTC text (`2026-11-25T09:30:00Z`, optionally with milliseconds), which sorts
/// as text in time order.
///
/// Written by hand rather than with `ISO8601DateFormatter` because the writer formats every visit of a
/// batch, and this costs a few arithmetic steps instead of a formatter call.
public enum UTCTimestamp {
    /// Formats `date` as `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.mmmZ` with `milliseconds`.
    public static func format(_ date: Date, milliseconds: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendFormatted(date, milliseconds: milliseconds, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends what ``format(_:milliseconds:)`` answers to `bytes`, without making a `String`: the
    /// PostgreSQL writer encodes a batch's timestamps straight into its `COPY` text.
    /// A time outside years 1 to 9999 is written as the nearest end of that range.
    public static func appendFormatted(_ date: Date, milliseconds: Bool = false, to bytes: inout [UInt8]) {
        let (seconds, millis) = floorDivide(Int64((clamped(date) * 1000).rounded(.down)), by: 1000)
        appendSecond(seconds, to: &bytes)
        if milliseconds {
            bytes.append(UInt8(ascii: "."))
            append(millis, width: 3, to: &bytes)
        }
        bytes.append(UInt8(ascii: "Z"))
    }

    /// Formats many times in a row, with milliseconds, as ``format(_:milliseconds:)`` does: a batch's
    /// visits mostly fall in the second of the one before, so the date and the time of day are worked
    /// out once per second and only the milliseconds for each.
    struct MillisecondFormatter {
        private var second = Int64.min
        /// `YYYY-MM-DDTHH:MM:SS` of `second`.
        private var prefix: [UInt8] = []

        mutating func format(_ date: Date) -> String {
            let (seconds, millis) = floorDivide(Int64((clamped(date) * 1000).rounded(.down)), by: 1000)
            if seconds != second {
                prefix.removeAll(keepingCapacity: true)
                appendSecond(seconds, to: &prefix)
                second = seconds
            }
            return String(unsafeUninitializedCapacity: prefix.count + 5) { buffer in
                _ = buffer.initialize(fromContentsOf: prefix)
                var index = prefix.count
                buffer[index] = UInt8(ascii: ".")
                buffer[index + 1] = UInt8(ascii: "0") + UInt8(millis / 100)
                buffer[index + 2] = UInt8(ascii: "0") + UInt8(millis / 10 % 10)
                buffer[index + 3] = UInt8(ascii: "0") + UInt8(millis % 10)
                index += 4
                buffer[index] = UInt8(ascii: "Z")
                return index + 1
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS` of `seconds` since 1970.
    private static func appendSecond(_ seconds: Int64, to bytes: inout [UInt8]) {
        let (days, secondOfDay) = floorDivide(seconds, by: 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        append(year, width: 4, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        append(month, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        append(day, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "T"))
        append(secondOfDay / 3600, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        append(secondOfDay / 60 % 60, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        append(secondOfDay % 60, width: 2, to: &bytes)
    }

    /// Parses what ``format(_:milliseconds:)`` writes, with or without milliseconds.
    public static func parse(_ text: String) -> Date? {
        let digits = Array(text.utf8)
        guard digits.count == 20 || digits.count == 24, digits.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for byte in digits[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        var millis: Int64 = 0
        if digits.count == 24 {
            guard digits[19] == UInt8(ascii: "."), let value = number(20..<23) else { return nil }
            millis = value
        }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second
        return Date(timeIntervalSince1970: Double(seconds) + Double(millis) / 1000)
    }

    /// The UTC day of `date`, as days since 1970-01-01.
    public static func day(_ date: Date) -> Int {
        Int((clamped(date) / 86_400).rounded(.down))
    }

    /// The minute of `date`, as minutes since 1970-01-01 (Unix time / 60, rounded down, so a time
    /// before 1970 falls in the minute that starts before it): the key of the per-minute counts.
    public static func minute(_ date: Date) -> Int {
        Int((clamped(date) / 60).rounded(.down))
    }

    /// Seconds since 1970 of the first and the last second of years 1 to 9999: what four digits of a
    /// year can write.
    static let writableSeconds: ClosedRange<Double> = -62_135_596_800...253_402_300_799

    /// `date`'s seconds since 1970 within ``writableSeconds`` (1970 itself for NaN): a time from a
    /// param or a file never makes the integer conversions trap.
    private static func clamped(_ date: Date) -> Double {
        let seconds = date.timeIntervalSince1970
        guard !seconds.isNaN else { return 0 }
        return min(max(seconds, writableSeconds.lowerBound), writableSeconds.upperBound)
    }

    /// Day `day` (days since 1970-01-01) as `YYYY-MM-DD`.
    public static func dayText(_ day: Int) -> String {
        String(format(Date(timeIntervalSince1970: Double(day) * 86_400)).prefix(10))
    }

    /// Parses `YYYY-MM-DD` into days since 1970-01-01; `nil` for anything else, `2026-02-30` included.
    public static func parseDay(_ text: String) -> Int? {
        guard text.utf8.count == 10, let date = parse(text + "T00:00:00Z") else { return nil }
        let day = day(date)
        return dayText(day) == text ? day : nil
    }

    /// Division that rounds towards minus infinity, so times before 1970 format correctly too.
    private static func floorDivide(_ value: Int64, by divisor: Int64) -> (Int64, Int64) {
        let remainder = (value % divisor + divisor) % divisor
        return ((value - remainder) / divisor, remainder)
    }

    private static func append(_ value: Int64, width: Int, to bytes: inout [UInt8]) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01.
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Howard Hinnant's `days_from_civil`, the inverse of ``civilDate(daysSinceEpoch:)``.
    private static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
