// feerecon-bench: load generators for the scripts under Benchmarks/.
import ArgumentParser

/// The `feerecon-bench` command: one subcommand per benchmark, each in its own file.
struct FeeReconBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feerecon-bench",
        abstract: "Load generators for the scripts under Benchmarks/.",
        subcommands: [DBIngest.self, CreateIntent.self, SandboxCreate.self, CallbackIngest.self]
    )
}

/// Inside an async function the asynchronous `main()` is chosen; top-level code would pick
/// ParsableCommand's synchronous one, which cannot run async subcommands.
func runCommand() async {
    await FeeReconBench.main()
}

await runCommand()
