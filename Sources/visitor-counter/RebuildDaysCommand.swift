import ArgumentParser
import Foundation
import VisitorCounter

struct RebuildDaysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild-days",
        abstract: "Count the daily rollup again in another time zone, from the visit rows, and record the zone.",
        discussion: """
            Stop the counter first (on every host of a PostgreSQL database), then start it with the same \
            --time-zone. Days from the oldest row kept on are counted again, without unique visitors; older \
            days keep their dates. docs/options.md under \"Time zone\" \
            (/usr/share/doc/visitor-counter/docs/options.md when installed).
            """
    )

    @Option(help: "The SQLite database file the counter writes, or its PostgreSQL connection URI.")
    var database: String

    @Option(help: ArgumentHelp("The IANA time zone to count the days in (Europe/Berlin, Asia/Kolkata).", valueName: "zone"))
    var timeZone: String

    func validate() throws {
        guard LocalCalendar(identifier: timeZone) != nil else {
            throw ValidationError(
                "--time-zone: '\(timeZone)' is not an IANA time zone this system knows, such as Europe/Berlin (see /usr/share/zoneinfo, package tzdata)")
        }
        guard StoreLocation.isConnectionURI(database) || FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("no database at \(database)")
        }
    }

    func run() throws {
        let store = try StoreLocation.reading(database).open(timeZone: nil)
        let outcome = try store.rebuildDays(in: LocalCalendar(identifier: timeZone) ?? .utc)
        print("rebuild-days: \(outcome.description)")
    }
}
