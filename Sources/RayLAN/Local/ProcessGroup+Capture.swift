#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation

extension ProcessGroup {
    /// What a short command printed and how it ended.
    struct Captured: Sendable {
        /// The exit code (128 + signal when a signal ended it); nil when it was killed at the timeout.
        var status: Int32?
        /// stdout and stderr together.
        var output: String
    }

    /// Runs a short command (its own process group, stdin from /dev/null) and returns its output. At the
    /// timeout its group is killed and `status` is nil.
    ///
    /// - Throws: a ``LocalRayError`` (`spawnFailed`) when it cannot be started at all.
    static func capture(
        _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
        timeout: Duration = .seconds(30)
    ) async throws -> Captured {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "raylan-\(UUID().uuidString.prefix(8)).out"
        ).path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let pid = try spawn(arguments, environment: environment, logFile: file)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var status: Int32?
        while true {
            if let ended = exitStatus(pid) {
                status = ended
                break
            }
            if clock.now >= deadline {
                kill(-pid, SIGKILL)
                reap(pid)
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return Captured(status: status, output: output)
    }

    /// The full path of `name` in `PATH` (or `name` itself when it has a slash), nil when not found.
    static func executable(named name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let folders = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") + ["/usr/sbin", "/sbin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
