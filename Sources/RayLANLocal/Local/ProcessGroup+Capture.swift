#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore
import Subprocess
// `FilePath`, the type of `Executable.path(_:)`: Apple's System on Apple platforms, swift-system elsewhere.
#if canImport(System)
    import System
#else
    import SystemPackage
#endif

extension ProcessGroup {
    /// What a short command printed and how it ended.
    package struct Captured: Sendable {
        /// The exit code (128 + signal when a signal ended it); nil when it was killed at the timeout.
        package var status: Int32?
        /// stdout and stderr together, as they were written (one pipe, as `2>&1`), decoded as UTF-8.
        package var output: String
    }

    /// The most output ``capture(_:environment:timeout:outputLimit:)`` collects by default: 4 MiB.
    package static let captureLimit = 4 << 20

    /// Runs a short command and returns what it printed and how it ended.
    ///
    /// It runs with swift-subprocess in a process group of its own (`processGroupID = 0`), stdin from /dev/null,
    /// stdout and stderr into one pipe, and is reaped before this returns. `arguments[0]` is a path, or a name
    /// looked up in `environment`'s `PATH`. At the timeout SIGKILL goes to its whole group (swift-subprocess's
    /// teardown, sent before the leader is reaped) and `status` is nil; the output printed until then is kept.
    /// A command that exits leaving children that hold the pipe open is not waited for (swift-subprocess stops
    /// reading when the leader exits); those children are left running.
    ///
    /// Cancelling the calling task kills the group the same way and throws `CancellationError`.
    ///
    /// - Parameters:
    ///   - arguments: The command and its arguments.
    ///   - environment: Its whole environment (default: this process's).
    ///   - timeout: How long it may run (default: 30 s).
    ///   - outputLimit: The most bytes of output collected (default: ``captureLimit``).
    /// - Returns: Its status and output.
    /// - Throws: a ``LocalRayError``: `spawnFailed` when it cannot be started (or followed) at all,
    ///   `outputTooLarge` when it printed more than `outputLimit` bytes (its group is killed then).
    package static func capture(
        _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
        timeout: Duration = .seconds(30), outputLimit: Int = captureLimit
    ) async throws -> Captured {
        let options = {
            var options = PlatformOptions()
            options.processGroupID = 0
            // Used when the run is cancelled (at the timeout) or fails (output over the limit).
            options.teardownSequence = [.send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .zero)]
            return options
        }()
        let executable: Executable =
            arguments[0].contains("/") ? .path(FilePath(arguments[0])) : .name(arguments[0])
        let variables = [Subprocess.Environment.Key: String](
            environment.compactMap { key, value in Subprocess.Environment.Key(rawValue: key).map { ($0, value) } },
            uniquingKeysWith: { first, _ in first })

        /// How the race between the command and the timeout ended.
        enum Finish: Sendable {
            case ran(TerminationStatus, output: String)
            case timedOut
        }
        do {
            return try await withThrowingTaskGroup(of: Finish.self) { group in
                group.addTask {
                    let result = try await Subprocess.run(
                        executable, arguments: Arguments(Array(arguments.dropFirst())),
                        environment: .custom(variables), platformOptions: options, input: .none,
                        output: .string(limit: outputLimit), error: .combinedWithOutput)
                    return .ran(result.terminationStatus, output: result.standardOutput)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                }
                let first = try await group.next()
                // Cancels the run after a timeout (its teardown kills the group), the timer otherwise.
                group.cancelAll()
                if case .ran(let status, let output)? = first {
                    try Task.checkCancellation()
                    return Captured(status: exitStatus(of: status), output: output)
                }
                while let next = try await group.next() {
                    if case .ran(_, let output) = next { return Captured(status: nil, output: output) }
                }
                return Captured(status: nil, output: "")
            }
        } catch let error as SubprocessError where error.code == .outputLimitExceeded {
            throw LocalRayError(
                .outputTooLarge,
                "'\(arguments[0])' printed more than \(outputLimit) bytes; it was stopped",
                remedy: "Run '\(arguments.joined(separator: " "))' by hand to see what it prints.",
                underlying: error)
        } catch let error as SubprocessError {
            throw LocalRayError(
                .spawnFailed, "Could not run '\(arguments[0])': \(error)",
                remedy: "Check that '\(arguments[0])' exists and is executable.", underlying: error)
        }
    }

    /// A status as ``Captured/status`` gives it: the exit code, or 128 + the signal that ended the command.
    static func exitStatus(of status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    /// The full path of `name` in `PATH` (or `name` itself when it has a slash), nil when not found.
    static func executable(named name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let folders = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") + ["/usr/sbin", "/sbin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
