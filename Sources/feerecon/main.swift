import ArgumentParser

/// The `feerecon` command line: one subcommand per job.
struct FeeRecon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feerecon",
        abstract: "Online payment of administrative-procedure fees and their reconciliation.",
        subcommands: [
            SandboxCommand.self,
        ])
}

/// Inside an async function the asynchronous `main()` is chosen; top-level code picks the
/// synchronous overload, which refuses async commands.
func runFeeRecon() async {
    await FeeRecon.main()
}

await runFeeRecon()
