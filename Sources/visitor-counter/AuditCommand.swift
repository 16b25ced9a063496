import ArgumentParser
import Foundation
import VisitorCounter

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Print the audit log: every failed write, degradation, spill and replay, oldest first.",
        discussion: """
            The log is DATABASE.audit.jsonl (and .1, the file before it), written by every worker; with a \
            PostgreSQL database, STATE_DIRECTORY/postgresql.audit.jsonl, this host's own. What is logged \
            and when: docs/operations.md under \"When the database fails\" \
            (/usr/share/doc/visitor-counter/docs/operations.md when installed).
            """
    )

    @Option(help: "The SQLite database file the counter writes (its audit log is next to it), or its PostgreSQL connection URI.")
    var database: String

    @Option(help: "With a PostgreSQL --database: the folder serve was given. (default: $STATE_DIRECTORY)")
    var stateDirectory: String?

    @Flag(help: "Print the entries as they are stored, one JSON object per line.")
    var json = false

    func run() throws {
        let location: StoreLocation
        do {
            location = try StoreLocation(database: database, stateDirectory: stateDirectory ?? CounterOptions.systemdStateDirectory)
        } catch {
            throw ValidationError("--database: \(error)")
        }
        let path = AuditLog(database: location.localFiles, logger: .init(label: "audit")).path
        guard FileManager.default.fileExists(atPath: path) || FileManager.default.fileExists(atPath: path + ".1") else {
            print("no audit log at \(path): nothing has failed")
            return
        }
        let entries = try AuditLog.read(path: path)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for entry in entries { print(String(decoding: try encoder.encode(entry), as: UTF8.self)) }
            return
        }
        for entry in entries {
            var line = "\(entry.time)  worker \(entry.worker) (pid \(entry.pid))  \(entry.event)  visits=\(entry.visits)"
            if let error = entry.error { line += "  error: \(error)" }
            print(line + "\n    \(entry.action)")
        }
    }
}
