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
    var handler = DeferredMetadataLogHandler(StreamLogHandler.standardError(label: label))
    let level = ProcessInfo.processInfo.environment["FEERECON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
    handler.logLevel = level ?? .info
    return handler
}

/// Writes what `StreamLogHandler` writes, but formats the logger's metadata only for a line that
/// is written. `StreamLogHandler` formats it on every change, and every request sets some (its
/// ids) while few requests write a line.
struct DeferredMetadataLogHandler: LogHandler {
    private var output: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(_ output: StreamLogHandler) {
        self.output = output
    }

    var logLevel: Logger.Level {
        get { output.logLevel }
        set { output.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { output.metadataProvider }
        set { output.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var output = self.output
        if !metadata.isEmpty { output.metadata = metadata }
        output.log(event: event)
    }
}

/// Inside an async function the asynchronous `main()` is chosen; top-level code would pick
/// ParsableCommand's synchronous one, which cannot run async subcommands.
func runCommand() async {
    await FeeReconCommand.main()
}

await runCommand()
