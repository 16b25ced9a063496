import Foundation

/// Streams raw visits or daily rollups out of the database as CSV or JSON, row by row through a cursor
/// and a 64 KiB output buffer, so memory stays the same whatever the number of rows.
public struct Exporter {
    public enum Format: String, CaseIterable, Sendable {
        case csv
        case json
    }

    public let store: any CounterStore
    public let format: Format
    /// The first and last local day (days since 1970-01-01, in the store's zone) to export, both
    /// included; `nil` for no bound.
    public let from: Int?
    public let to: Int?

    public init(store: any CounterStore, format: Format, from: Int?, to: Int?) {
        self.store = store
        self.format = format
        self.from = from
        self.to = to
    }

    /// Writes the raw visits, oldest first, to `output`.
    ///
    /// Reads in pages of 10,000 rows, each in a short read transaction of its own: one snapshot held
    /// for a whole long export would keep the WAL from being checkpointed meanwhile.
    public func exportVisits(to output: FileHandle, pageSize: Int = 10_000) throws {
        var writer = BufferedWriter(output)
        let (first, afterLast) = bounds
        switch format {
        case .csv: try writer.write("timestamp,ip,country_code,country,user_agent,path,referrer\n")
        case .json: try writer.write("[")
        }
        var separator = "\n"
        // Where the last page ended: (timestamp, id), which is unique and ordered by the timestamp index.
        var after = VisitCursor(timestamp: first, id: Int64.min)
        while true {
            let page = try store.visitPage(after: after, before: afterLast, limit: pageSize)
            for visit in page {
                switch format {
                case .csv:
                    try writer.write(
                        [visit.timestamp, visit.ip ?? "", visit.countryCode, visit.country, visit.userAgent, visit.path, visit.referrer ?? ""].map(Self.csvField)
                            .joined(separator: ",") + "\n")
                case .json:
                    let row: JSON = [
                        "timestamp": .string(visit.timestamp), "ip": .string(orNull: visit.ip),
                        "country_code": .string(visit.countryCode), "country": .string(visit.country),
                        "user_agent": .string(visit.userAgent), "path": .string(visit.path),
                        "referrer": .string(orNull: visit.referrer),
                    ]
                    try writer.write(separator + row.text)
                    separator = ",\n"
                }
            }
            guard let last = page.last, page.count == pageSize else { break }
            after = VisitCursor(timestamp: last.timestamp, id: last.id)
        }
        if format == .json { try writer.write("\n]\n") }
        try writer.flush()
    }

    /// Writes the daily rollups, oldest first, to `output`; in CSV one line per day and country.
    public func exportDaily(to output: FileHandle) throws {
        var writer = BufferedWriter(output)
        let first = from.map(UTCTimestamp.dayText) ?? "0000-00-00"
        let last = to.map(UTCTimestamp.dayText) ?? "9999-99-99"
        var current: DayStats?
        var separator = "\n"
        func finish(_ day: DayStats) throws {
            if format == .json {
                try writer.write(separator + day.json)
                separator = ",\n"
            }
        }
        switch format {
        case .csv: try writer.write("date,visitors,unique_visitors,country_code,country_visitors\n")
        case .json: try writer.write("{\"days\": [")
        }
        try store.forEachDailyRow(first: first, last: last) { row in
            if format == .csv {
                try writer.write(
                    "\(row.date),\(row.visitors),\(row.uniqueVisitors),\(row.countryCode ?? ""),\(row.countryVisitors.map(String.init) ?? "")\n")
                return
            }
            if current?.date != row.date {
                if let current { try finish(current) }
                current = DayStats(date: row.date, visitors: row.visitors, uniqueVisitors: row.uniqueVisitors, countries: [:])
            }
            if let code = row.countryCode, let visitors = row.countryVisitors { current?.countries[code] = visitors }
        }
        if let current { try finish(current) }
        if format == .json { try writer.write("\n]}\n") }
        try writer.flush()
    }

    /// `timestamp` bounds: from the start of local day `from` to the start of the day after `to`, as
    /// UTC timestamps with milliseconds (the rows' times are UTC).
    private var bounds: (String, String) {
        let calendar = store.calendar
        return (
            from.map { UTCTimestamp.format(calendar.start(ofDay: $0), milliseconds: true) } ?? "",
            to.map { UTCTimestamp.format(calendar.start(ofDay: $0 + 1), milliseconds: true) } ?? "\u{10FFFF}"
        )
    }

    /// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
    ///
    /// A field that a spreadsheet would take for a formula, one that starts with `=`, `+`, `-`, `@`, a tab or
    /// a carriage return, gets a leading apostrophe and quotes, as OWASP's guidance on CSV injection says:
    /// a user agent is the client's own text and can start with any of them.
    static func csvField(_ value: String) -> String {
        let isFormula = value.unicodeScalars.first.map { "=+-@\t\r".unicodeScalars.contains($0) } ?? false
        let text = isFormula ? "'" + value : value
        guard isFormula || text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Collects output in a 64 KiB buffer and writes it out when full.
struct BufferedWriter {
    private let output: FileHandle
    private var buffer: [UInt8] = []

    init(_ output: FileHandle) {
        self.output = output
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ text: String) throws {
        buffer += text.utf8
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try output.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
