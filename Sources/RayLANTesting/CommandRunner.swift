#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLAN

/// What a command printed and how it exited.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

public enum CommandRunner {
    /// Runs the built `raylan` with `arguments`; `environment` entries are added to (nil values removed
    /// from) this process's environment. `RAYLAN_ADDRESS` and the `RAY_AUTH_TOKEN…` variables are removed
    /// unless given.
    public static func raylan(
        _ arguments: [String], environment: [String: String?] = [:], timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        try await RunningCommand(raylan: arguments, environment: environment).wait(timeout: timeout)
    }

    /// Runs `executable` (an absolute path) with `arguments` and waits for it.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String?] = [:],
        timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        try await RunningCommand(executable, arguments, environment: environment).wait(timeout: timeout)
    }
}

/// A command started in the background in a process group of its own (as a shell starts a job), with
/// stdout and stderr captured to files. Uses posix_spawn and waitpid directly, not Foundation's
/// `Process`, whose exit monitoring missed exits while the tests' other children came and went.
public final class RunningCommand: Sendable {
    public let pid: Int32
    let outFile: String
    let errFile: String

    /// Starts `raylan` with `arguments` (environment as in ``CommandRunner/raylan(_:environment:timeout:)``).
    public convenience init(raylan arguments: [String], environment: [String: String?] = [:]) throws {
        var merged: [String: String?] = ["RAYLAN_ADDRESS": nil, "RAY_AUTH_TOKEN": nil, "RAY_AUTH_TOKEN_PATH": nil]
        merged.merge(environment) { _, new in new }
        try self.init(TestEnvironment.raylanExecutable, arguments, environment: merged)
    }

    /// Starts `executable` (an absolute path) with `arguments`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String?] = [:]) throws {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString)").path
        outFile = base + ".out"
        errFile = base + ".err"
        pid = try ProcessGroup.spawn([executable] + arguments, environment: env, logFile: outFile, errorFile: errFile)
    }

    /// What it printed so far.
    public var stdout: String { (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? "" }

    /// Sends SIGINT, as Ctrl-C does.
    public func interrupt() { kill(pid, SIGINT) }

    /// Kills its whole process group (the command was started as the leader of a group of its own), as a
    /// crash or a pulled cable would end it: no chance to clean up.
    public func killGroup() { kill(-pid, SIGKILL) }

    /// Waits for the exit (killing it after `timeout`) and returns what it printed and its status
    /// (128 + signal when a signal ended it).
    public func wait(timeout: Duration = .seconds(300)) async -> CommandResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var status: Int32?
        while status == nil {
            status = ProcessGroup.exitStatus(pid)
            if status == nil {
                if clock.now >= deadline { kill(pid, SIGKILL) }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        let result = CommandResult(status: status ?? -1, stdout: stdout, stderr: stderr)
        try? FileManager.default.removeItem(atPath: outFile)
        try? FileManager.default.removeItem(atPath: errFile)
        return result
    }
}
