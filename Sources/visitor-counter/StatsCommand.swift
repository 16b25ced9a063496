import ArgumentParser
import Foundation
import VisitorCounter

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print the stats JSON that GET /api/sys/stats answers, read from the database.",
        discussion: """
            Its fields are described in docs/http.md under \"What it does\" \
            (/usr/share/doc/visitor-counter/docs/http.md when installed).
            """
    )

    @Option(help: "The SQLite database file the counter writes, or its PostgreSQL connection URI.")
    var database: String

    func validate() throws {
        guard StoreLocation.isConnectionURI(database) || FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("no database at \(database)")
        }
    }

    func run() throws {
        // In the zone the database records, as the counter that writes it counts its days.
        let store = try StoreLocation.reading(database).open(timeZone: nil)
        print(try store.stats().json)
    }
}
