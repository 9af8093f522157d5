#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// Starting a command in a process group of its own, and ending a whole local Ray by its groups.
///
/// Ray's processes outlive SIGTERM for seconds, and some (Serve actors, job supervisors) move to groups
/// of their own, so ``terminateCluster(leader:marker:grace:)`` ends the leader's group, every group that
/// a descendant of the leader is in, and every process whose command line names the cluster's private
/// temp dir (`marker`): TERM, wait, then KILL what is left. It never touches other processes.
public enum ProcessGroup {
    /// A process seen in the process table.
    struct Entry: Hashable {
        var pid: pid_t
        var parent: pid_t
        var group: pid_t
        var commandLine: String
    }

    /// Starts `arguments` with `environment` in a new process group (its id is the returned pid), with
    /// stdin from /dev/null, stdout appended to `logFile` and stderr to `errorFile` (default: `logFile`).
    ///
    /// - Throws: a ``LocalRayError`` (`spawnFailed`) naming the command and errno.
    public static func spawn(
        _ arguments: [String], environment: [String: String], logFile: String, errorFile: String? = nil
    ) throws -> pid_t {
        var fileActions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #if canImport(Darwin)
        fileActions = nil
        attributes = nil
        #endif
        posix_spawn_file_actions_init(&fileActions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&fileActions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errorFile {
            posix_spawn_file_actions_addopen(&fileActions, 2, errorFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &fileActions, &attributes, argv, envp)
        guard result == 0 else {
            throw LocalRayError(
                .spawnFailed,
                "Could not start '\(arguments[0])': \(String(cString: strerror(result)))",
                remedy: "Check that the Python environment exists and is executable.")
        }
        return pid
    }

    /// Whether a process exists and has not exited (an exited, unreaped zombie counts as gone).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        #if os(Linux)
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            stat[stat.index(after: close)...].split(separator: " ").first == "Z"
        {
            return false
        }
        #endif
        return true
    }

    /// The exit status of our child `pid` once it has ended (reaping it): its exit code, or 128 + the
    /// signal that ended it; nil while it runs.
    public static func exitStatus(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// True when `pid` is gone, or is our child and has exited (it is reaped then).
    static func hasExited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return true }
        return !isAlive(pid)
    }

    /// Reaps `pid` if it is our exited child, so that it does not linger as a zombie.
    static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// Every process that belongs to the cluster led by `leader`: its descendants and every process whose
    /// command line contains `marker`.
    static func members(leader: pid_t, marker: String?) -> [Entry] {
        let table = processTable()
        var children: [pid_t: [Entry]] = [:]
        for entry in table { children[entry.parent, default: []].append(entry) }
        var result: [pid_t: Entry] = [:]
        var queue = table.filter { $0.pid == leader }
        if let marker, !marker.isEmpty {
            queue += table.filter { $0.commandLine.contains(marker) }
        }
        while let entry = queue.popLast() {
            guard result[entry.pid] == nil else { continue }
            result[entry.pid] = entry
            queue += children[entry.pid] ?? []
        }
        return Array(result.values)
    }

    /// Ends the cluster led by `leader` (see the type's discussion). Returns how many processes were
    /// still alive after `grace` and had to be killed.
    @discardableResult
    public static func terminateCluster(leader: pid_t, marker: String?, grace: Duration = .seconds(10)) async -> Int {
        let ownGroup = getpgrp()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        var signalled = Set<pid_t>()
        // Keep sending TERM to newly seen groups while waiting: supervisors may start helpers as they go.
        while true {
            reap(leader)
            let members = members(leader: leader, marker: marker)
            if members.isEmpty { return 0 }
            for group in Set(members.map(\.group)) where group > 1 && group != ownGroup && !signalled.contains(group) {
                kill(-group, SIGTERM)
                signalled.insert(group)
            }
            for member in members where member.group == ownGroup && !signalled.contains(member.pid) {
                kill(member.pid, SIGTERM)
                signalled.insert(member.pid)
            }
            if clock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        let left = members(leader: leader, marker: marker)
        for member in left {
            if member.group > 1 && member.group != ownGroup { kill(-member.group, SIGKILL) }
            kill(member.pid, SIGKILL)
        }
        for _ in 0..<25 where !members(leader: leader, marker: marker).isEmpty {
            reap(leader)
            try? await Task.sleep(for: .milliseconds(200))
        }
        return left.count
    }

    /// The process table: /proc on Linux, `ps` elsewhere.
    static func processTable() -> [Entry] {
        #if os(Linux)
        var entries: [Entry] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in names {
            guard let pid = pid_t(name),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // pid (comm) state ppid pgrp ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 3, let parent = pid_t(fields[1]), let group = pid_t(fields[2]) else { continue }
            if fields[0] == "Z" { continue }
            let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(name)/cmdline"))) ?? Data()
            let commandLine = String(decoding: raw.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            entries.append(Entry(pid: pid, parent: parent, group: group, commandLine: commandLine))
        }
        return entries
        #else
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/ps")
        process.arguments = ["-axww", "-o", "pid=,ppid=,pgid=,stat=,command="]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: true)
            guard parts.count >= 4, let pid = pid_t(parts[0]), let parent = pid_t(parts[1]),
                let group = pid_t(parts[2]), !parts[3].hasPrefix("Z")
            else { return nil }
            return Entry(pid: pid, parent: parent, group: group, commandLine: parts.count > 4 ? String(parts[4]) : "")
        }
        #endif
    }
}
