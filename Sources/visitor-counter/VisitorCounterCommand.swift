import ArgumentParser
import Foundation
import Logging

@main
struct VisitorCounterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visitor-counter",
        abstract: "A self-hosted visitor and country counter: a FastCGI responder behind nginx.",
        subcommands: [StatsCommand.self, SimulateCommand.self]
    )
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
