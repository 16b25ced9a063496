import Foundation
import GRDB

/// Streams raw visits or daily rollups out of the database as CSV or JSON, row by row through a cursor
/// and a 64 KiB output buffer, so memory stays the same whatever the number of rows.
public struct Exporter {
    public enum Format: String, CaseIterable, Sendable {
        case csv
        case json
    }

    public let store: VisitorStore
    public let format: Format
    /// The first and last UTC day (days since 1970-01-01) to export, both included; `nil` for no bound.
    public let from: Int?
    public let to: Int?

    public init(store: VisitorStore, format: Format, from: Int?, to: Int?) {
        self.store = store
        self.format = format
        self.from = from
        self.to = to
    }

    /// Writes the raw visits, oldest first, to `output`.
    public func exportVisits(to output: FileHandle) throws {
        var writer = BufferedWriter(output)
        let (first, afterLast) = bounds
        try store.read { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT timestamp, ip, country_code, country, user_agent FROM visitors
                    WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp, id
                    """,
                arguments: [first, afterLast])
            switch format {
            case .csv: writer.write("timestamp,ip,country_code,country,user_agent\n")
            case .json: writer.write("[")
            }
            var separator = "\n"
            while let row = try rows.next() {
                let (timestamp, ip, code, country, agent): (String, String?, String, String, String) = (row[0], row[1], row[2], row[3], row[4])
                switch format {
                case .csv:
                    writer.write([timestamp, ip ?? "", code, country, agent].map(Self.csvField).joined(separator: ",") + "\n")
                case .json:
                    writer.write(
                        separator + "{\"timestamp\": \(JSONText.quoted(timestamp)), \"ip\": \(ip.map(JSONText.quoted) ?? "null"), "
                            + "\"country_code\": \(JSONText.quoted(code)), \"country\": \(JSONText.quoted(country)), "
                            + "\"user_agent\": \(JSONText.quoted(agent))}")
                    separator = ",\n"
                }
            }
            if format == .json { writer.write("\n]\n") }
        }
        try writer.flush()
    }

    /// Writes the daily rollups, oldest first, to `output`; in CSV one line per day and country.
    public func exportDaily(to output: FileHandle) throws {
        var writer = BufferedWriter(output)
        let first = from.map(UTCTimestamp.dayText) ?? "0000-00-00"
        let last = to.map(UTCTimestamp.dayText) ?? "9999-99-99"
        try store.read { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT d.date, d.visitors, d.unique_visitors, c.country_code, c.visitors
                    FROM daily_visits d LEFT JOIN daily_countries c ON c.date = d.date
                    WHERE d.date BETWEEN ? AND ? ORDER BY d.date, c.visitors DESC, c.country_code
                    """,
                arguments: [first, last])
            var current: DayStats?
            var separator = "\n"
            func finish(_ day: DayStats) {
                if format == .json {
                    writer.write(separator + day.json)
                    separator = ",\n"
                }
            }
            switch format {
            case .csv: writer.write("date,visitors,unique_visitors,country_code,country_visitors\n")
            case .json: writer.write("{\"days\": [")
            }
            while let row = try rows.next() {
                let (date, visitors, uniques, code, countryVisitors): (String, Int, Int, String?, Int?) = (row[0], row[1], row[2], row[3], row[4])
                if format == .csv {
                    writer.write("\(date),\(visitors),\(uniques),\(code ?? ""),\(countryVisitors.map(String.init) ?? "")\n")
                    continue
                }
                if current?.date != date {
                    if let current { finish(current) }
                    current = DayStats(date: date, visitors: visitors, uniqueVisitors: uniques, countries: [:])
                }
                if let code, let countryVisitors { current?.countries[code] = countryVisitors }
            }
            if let current { finish(current) }
            if format == .json { writer.write("\n]}\n") }
        }
        try writer.flush()
    }

    /// `timestamp` bounds: from the start of `from` to the start of the day after `to`.
    private var bounds: (String, String) {
        (
            from.map { UTCTimestamp.dayText($0) } ?? "",
            to.map { UTCTimestamp.dayText($0 + 1) } ?? "\u{10FFFF}"
        )
    }

    /// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Collects output in a 64 KiB buffer and writes it out when full.
struct BufferedWriter {
    private let output: FileHandle
    private var buffer: [UInt8] = []
    private var failure: Error?

    init(_ output: FileHandle) {
        self.output = output
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ text: String) {
        buffer += text.utf8
        if buffer.count >= 1 << 16 { try? flush() }
    }

    mutating func flush() throws {
        if let failure { throw failure }
        guard !buffer.isEmpty else { return }
        do {
            try output.write(contentsOf: buffer)
        } catch {
            failure = error
            throw error
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
