import ArgumentParser
import Foundation
import Logging

/// The `feerecon` command: one subcommand per operator task, each in its own file.
struct FeeReconCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feerecon",
        abstract: "Online payment of administrative fees: the service and its operator tools.",
        subcommands: [Serve.self, Migrate.self, Agencies.self, APIKeys.self, SandboxCommand.self]
    )
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    let level = ProcessInfo.processInfo.environment["FEERECON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
    handler.logLevel = level ?? .info
    return handler
}

/// Inside an async function the asynchronous `main()` is chosen; top-level code would pick
/// ParsableCommand's synchronous one, which cannot run async subcommands.
func runCommand() async {
    await FeeReconCommand.main()
}

await runCommand()
