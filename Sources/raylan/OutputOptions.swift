import ArgumentParser

/// `--json`: print the result as JSON for scripts instead of tables. Shared by every command with a result.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false
}
