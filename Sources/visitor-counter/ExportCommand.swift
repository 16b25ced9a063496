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

    @Option(help: "The format of the output.")
    var format: Exporter.Format = .csv

    @Option(help: ArgumentHelp("The first day, in the database's time zone (serve --time-zone). (default: the first there is)", valueName: "yyyy-mm-dd"))
    var from: DayArgument?

    @Option(help: ArgumentHelp("The last day, included, in the database's time zone. (default: the last there is)", valueName: "yyyy-mm-dd"))
    var to: DayArgument?

    @Flag(help: "Export the daily rollups (visitors, unique visitors and countries per day) instead of the raw visits.")
    var daily = false

    func validate() throws {
        if let from, let to, from.day > to.day {
            throw ValidationError("--from (\(from.text)) is after --to (\(to.text))")
        }
        guard StoreLocation.isConnectionURI(database) || FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("no database at \(database)")
        }
    }

    func run() throws {
        let exporter = Exporter(
            store: try StoreLocation.reading(database).open(timeZone: nil), format: format, from: from?.day, to: to?.day)
        if daily {
            try exporter.exportDaily(to: .standardOutput)
        } else {
            try exporter.exportVisits(to: .standardOutput)
        }
    }
}
