import ArgumentParser
import Foundation
import VisitorCounter

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the raw visits, or the daily rollups, to standard output as CSV or JSON.",
        discussion: """
            Streams row by row: memory stays the same however many rows there are. The columns, the CSV \
            cells a spreadsheet would take for formulas, and how visits are cleaned: \
            docs/options.md under \"Export\" (/usr/share/doc/visitor-counter/docs/options.md when installed).
            """
    )

    @Option(help: "The SQLite database file the counter writes, or its PostgreSQL connection URI.")
    var database: String

    @Option(help: "csv or json.")
    var format: String = "csv"

    @Option(help: "The first UTC day, YYYY-MM-DD. (default: the first there is)")
    var from: String?

    @Option(help: "The last UTC day, YYYY-MM-DD, included. (default: the last there is)")
    var to: String?

    @Flag(help: "Export the daily rollups (visitors, unique visitors and countries per day) instead of the raw visits.")
    var daily = false

    func validate() throws {
        guard Exporter.Format(rawValue: format) != nil else { throw ValidationError("--format must be csv or json, not '\(format)'") }
        if let from, UTCTimestamp.parseDay(from) == nil { throw ValidationError("--from must be a date as YYYY-MM-DD, not '\(from)'") }
        if let to, UTCTimestamp.parseDay(to) == nil { throw ValidationError("--to must be a date as YYYY-MM-DD, not '\(to)'") }
        if let from, let to, let first = UTCTimestamp.parseDay(from), let last = UTCTimestamp.parseDay(to), first > last {
            throw ValidationError("--from (\(from)) is after --to (\(to))")
        }
        guard StoreLocation.isConnectionURI(database) || FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("no database at \(database)")
        }
    }

    func run() throws {
        let exporter = Exporter(
            store: try StoreLocation.reading(database).open(), format: Exporter.Format(rawValue: format) ?? .csv,
            from: from.flatMap(UTCTimestamp.parseDay), to: to.flatMap(UTCTimestamp.parseDay))
        if daily {
            try exporter.exportDaily(to: .standardOutput)
        } else {
            try exporter.exportVisits(to: .standardOutput)
        }
    }
}
