import ArgumentParser
import Foundation
import Logging

@main
struct VisitorCounterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visitor-counter",
        abstract: "A self-hosted visitor and country counter: a FastCGI responder behind nginx.",
        discussion: """
            The README and the pages in docs/ (in /usr/share/doc/visitor-counter/ when installed) describe \
            it: the routes (docs/http.md), the commands and options (docs/options.md), operations and \
            failures (docs/operations.md), country data (docs/country-data.md), the database \
            (docs/database.md) and deploying (docs/deploying.md).
            """,
        version: visitorCounterVersion,
        subcommands: [ServeCommand.self, StatsCommand.self, ExportCommand.self, RebuildDaysCommand.self, AuditCommand.self, TemplateCommand.self, WorkerCommand.self, SimulateCommand.self]
    )

    /// Like ArgumentParser's own `main`, but a bad value prints one line, not the usage: what a site
    /// owner reads in `journalctl` should say what is wrong and nothing else.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = message(for: error)
            if !message.isEmpty {
                FileHandle.standardError.write(Data("visitor-counter: \(message)\n".utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// An error that ends the command with one line on stderr.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Sends log lines to stderr, where journald picks them up; `LOG_LEVEL` (trace … critical) sets the level.
func bootstrapLogging() {
    let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
