import ArgumentParser
import Foundation
import VisitorCounter

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print the stats JSON that GET /api/sys/stats answers, read from the database."
    )

    @Option(help: "The SQLite database the counter writes.")
    var database: String

    func validate() throws {
        guard FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("no database at \(database)")
        }
    }

    func run() throws {
        let store = try VisitorStore(path: database)
        print(try store.stats().json)
    }
}
