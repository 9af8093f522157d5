import ArgumentParser
import Foundation
import RayLAN

/// What remote work runs with and reserves: a working directory, pip packages, environment variables and
/// resources. Shared by `job submit`, `call` and `actor create`.
struct RuntimeOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A local folder uploaded as the working directory (your modules and files).", valueName: "dir"))
    var workingDir: String?

    @Option(
        name: .long, parsing: .unconditional, help: ArgumentHelp("GPUs reserved (fractions allowed).", valueName: "n"))
    var gpus: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("CPUs reserved.", valueName: "n"))
    var cpus: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Memory reserved, in bytes.", valueName: "bytes"))
    var memory: Int?

    @Option(name: .long, help: ArgumentHelp("A custom resource reserved (repeatable).", valueName: "name=n"))
    var resource: [String] = []

    @Option(name: .long, help: ArgumentHelp("A pip package installed for it (repeatable).", valueName: "pkg"))
    var pip: [String] = []

    @Option(name: .long, help: ArgumentHelp("An environment variable for it (repeatable).", valueName: "k=v"))
    var env: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("A gitignore-style pattern left out of the upload (repeatable).", valueName: "pattern"))
    var exclude: [String] = []

    /// The resources asked for; every bad value is a usage error (exit 64).
    func resources() throws -> ResourceRequest {
        var resources = ResourceRequest()
        resources.gpus = try Self.amount(gpus, flag: "--gpus")
        resources.cpus = try Self.amount(cpus, flag: "--cpus")
        if let memory {
            guard memory >= 0 else {
                throw ValidationError(
                    "--memory must be a whole number of bytes, 0 or more, not '\(memory)'. Example: --memory 2000000000."
                )
            }
            resources.memoryBytes = memory
        }
        for item in resource {
            let (name, value) = try Self.pair(item, flag: "--resource", example: "--resource special=1")
            guard let amount = Double(value), amount >= 0, amount.isFinite else {
                throw ValidationError(
                    "--resource \(item): '\(value)' is not a number of 0 or more. Example: --resource special=1.")
            }
            resources.custom[name] = amount
        }
        return resources
    }

    /// The `--env` variables.
    func environment() throws -> [String: String] {
        var environment: [String: String] = [:]
        for item in env {
            let (name, value) = try Self.pair(item, flag: "--env", example: "--env MODEL=yolo11s.pt")
            environment[name] = value
        }
        return environment
    }

    /// What goes into the working directory's package.
    var packageOptions: PackageOptions {
        var options = PackageOptions()
        options.excludes = exclude
        return options
    }

    /// The working directory, checked to be an existing folder.
    func workingDirectory() throws -> URL? {
        guard let workingDir else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: workingDir, isDirectory: &isDirectory) else {
            throw ValidationError(
                "The working directory '\(workingDir)' does not exist. Pass an existing folder to --working-dir.")
        }
        guard isDirectory.boolValue else {
            throw ValidationError(
                "'\(workingDir)' is not a directory. Pass the folder that holds your code to --working-dir.")
        }
        return URL(fileURLWithPath: workingDir)
    }

    func validate() throws {
        _ = try resources()
        _ = try environment()
        _ = try workingDirectory()
    }

    static func amount(_ value: Double?, flag: String) throws -> Double? {
        try OptionCheck.amount(value, flag, example: "\(flag) 1 or \(flag) 0.5")
        return value
    }

    static func pair(_ item: String, flag: String, example: String) throws -> (String, String) {
        guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
            throw ValidationError("\(flag) '\(item)' has no '='. Use \(flag) NAME=VALUE, e.g. \(example).")
        }
        return (String(item[..<equals]), String(item[item.index(after: equals)...]))
    }
}
