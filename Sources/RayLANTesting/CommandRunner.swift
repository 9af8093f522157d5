import Foundation

/// Runs the built `raylan` (or any command) and captures stdout, stderr and the exit code.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

public enum CommandRunner {
    /// Runs `raylan` with `arguments`; `environment` entries are added to (nil values removed from) this
    /// process's environment. `RAYLAN_ADDRESS` and `RAY_AUTH_TOKEN` are removed unless given.
    public static func raylan(
        _ arguments: [String], environment: [String: String?] = [:], timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        var base: [String: String?] = ["RAYLAN_ADDRESS": nil, "RAY_AUTH_TOKEN": nil, "RAY_AUTH_TOKEN_PATH": nil]
        base.merge(environment) { _, new in new }
        return try await run(TestEnvironment.raylanExecutable, arguments, environment: base, timeout: timeout)
    }

    /// Runs `executable` with `arguments` and waits for it (killing it after `timeout`).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String?] = [:],
        timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }
        let out = try FileHandle(forWritingTo: outFile)
        let err = try FileHandle(forWritingTo: errFile)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while process.isRunning {
            if clock.now >= deadline {
                process.terminate()
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        try? out.close()
        try? err.close()
        return CommandResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outFile, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errFile, encoding: .utf8)) ?? "")
    }
}

/// A command started in the background, for tests that interact with it (e.g. send Ctrl-C).
public final class RunningCommand: @unchecked Sendable {
    let process: Process
    let outFile: URL
    let errFile: URL

    /// Starts `raylan` with `arguments` (environment as in ``CommandRunner/raylan(_:environment:timeout:)``).
    public init(raylan arguments: [String], environment: [String: String?] = [:]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.raylanExecutable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["RAYLAN_ADDRESS"] = nil
        env["RAY_AUTH_TOKEN"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        outFile = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        errFile = FileManager.default.temporaryDirectory.appendingPathComponent("err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// What it printed so far.
    public var stdout: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }

    /// Sends SIGINT, as Ctrl-C does.
    public func interrupt() { process.interrupt() }

    /// Waits for the exit (killing it after `timeout`) and returns the result.
    public func wait(timeout: Duration = .seconds(120)) async -> CommandResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while process.isRunning && clock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        defer {
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }
        return CommandResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }
}
