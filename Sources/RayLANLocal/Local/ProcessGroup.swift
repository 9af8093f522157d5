#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore

/// Starting a command in a process group of its own, and ending a whole local Ray by its groups.
///
/// Ray's processes outlive SIGTERM for seconds, and some (Serve actors, job supervisors) move to groups
/// of their own, so ``terminate(_:grace:)`` ends the groups of every member of a cluster whose leader was
/// proven to be RayLAN's (see ``Ownership``): TERM, wait, then KILL what is left. It never touches other
/// processes: a group is signalled as a whole only when every process in it is a member, or when it is the
/// group RayLAN made for the leader and the leader still runs.
public enum ProcessGroup {
    /// A process seen in the process table.
    struct Entry: Hashable {
        var pid: pid_t
        var parent: pid_t
        var group: pid_t
        /// Its argv (on macOS: its command line split at spaces).
        var arguments: [String]
        /// See ``ProcessIdentity/startTime``; nil when unreadable.
        var startTime: UInt64?
        /// Its effective user id; nil when unreadable.
        var user: uid_t?
    }

    /// The fields of a Linux `/proc/<pid>/stat` line that RayLAN reads, parsed after the last `)` (the
    /// command name before it may hold spaces and parentheses).
    struct StatLine {
        var state: Substring
        var parent: pid_t
        var group: pid_t
        /// Field 22, clock ticks after boot.
        var startTime: UInt64

        init?(_ line: String) {
            guard let close = line.lastIndex(of: ")") else { return nil }
            // Fields 3 (state), 4 (ppid), 5 (pgrp), …, 22 (starttime).
            let fields = line[line.index(after: close)...].split(separator: " ")
            guard fields.count > 19, let parent = pid_t(fields[1]), let group = pid_t(fields[2]),
                let startTime = UInt64(fields[19])
            else { return nil }
            self.state = fields[0]
            self.parent = parent
            self.group = group
            self.startTime = startTime
        }
    }

    /// Starts `arguments` with `environment` in a new process group (its id is the returned pid), with
    /// stdin from /dev/null, stdout appended to `logFile` and stderr to `errorFile` (default: `logFile`).
    ///
    /// It returns at once and leaves the process running, so that a leader such as `ray start` outlives the
    /// raylan process. That is why it calls `posix_spawn` itself, not swift-subprocess (which runs the short
    /// commands of `capture`): every `run` of swift-subprocess 1.0.2 returns only once the child has exited and
    /// been reaped, and kills it if the calling task is cancelled; it has no way to start a process and let it go.
    ///
    /// - Parameters:
    ///   - arguments: The command (a path, not looked up in `PATH`) and its arguments.
    ///   - environment: Its whole environment.
    ///   - logFile: Where its stdout goes (appended, created if missing).
    ///   - errorFile: Where its stderr goes; nil: `logFile`.
    /// - Returns: Its pid, which is also its process group's id.
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

    /// Ends the cluster whose leader was proven to be RayLAN's (see the type's discussion). Returns how many
    /// processes were still alive after `grace` and had to be killed.
    @discardableResult
    static func terminate(_ cluster: Ownership, grace: Duration = .seconds(10)) async -> Int {
        let ownGroup = getpgrp()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        var signalled = Set<pid_t>()
        // Keep sending TERM to newly seen groups while waiting: supervisors may start helpers as they go.
        while true {
            reap(cluster.leader)
            let table = processTable()
            let members = cluster.members(in: table)
            if members.isEmpty { return 0 }
            for target in cluster.targets(members, in: table, ownGroup: ownGroup) where !signalled.contains(target) {
                kill(target, SIGTERM)
                signalled.insert(target)
            }
            if clock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        let table = processTable()
        let left = cluster.members(in: table)
        for target in cluster.targets(left, in: table, ownGroup: ownGroup) { kill(target, SIGKILL) }
        for _ in 0..<25 where !cluster.members(in: processTable()).isEmpty {
            reap(cluster.leader)
            try? await Task.sleep(for: .milliseconds(200))
        }
        return left.count
    }

    /// The process table: /proc on Linux, `ps` (and `sysctl` for start times) elsewhere. Zombies are left out.
    static func processTable() -> [Entry] {
        #if os(Linux)
            var entries: [Entry] = []
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for name in names {
                guard let pid = pid_t(name),
                    let text = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                    let stat = StatLine(text), stat.state != "Z"
                else { continue }
                let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(name)/cmdline"))) ?? Data()
                let arguments = raw.split(separator: 0, omittingEmptySubsequences: false).map {
                    String(decoding: $0, as: UTF8.self)
                }
                entries.append(
                    Entry(
                        pid: pid, parent: stat.parent, group: stat.group,
                        arguments: arguments.last == "" ? Array(arguments.dropLast()) : arguments,
                        startTime: stat.startTime, user: user(of: pid)))
            }
            return entries
        #else
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/ps")
            process.arguments = ["-axww", "-o", "pid=,ppid=,pgid=,uid=,stat=,command="]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return [] }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                guard parts.count >= 5, let pid = pid_t(parts[0]), let parent = pid_t(parts[1]),
                    let group = pid_t(parts[2]), !parts[4].hasPrefix("Z")
                else { return nil }
                let arguments = parts.count > 5 ? parts[5].split(separator: " ").map(String.init) : []
                return Entry(
                    pid: pid, parent: parent, group: group, arguments: arguments,
                    startTime: ProcessIdentity.startTime(of: pid), user: uid_t(parts[3]))
            }
        #endif
    }

    #if os(Linux)
        /// The effective user id of `pid` (the second number of `Uid:` in `/proc/<pid>/status`).
        static func user(of pid: pid_t) -> uid_t? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
            else { return nil }
            let ids = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " })
            return ids.count > 1 ? uid_t(ids[1]) : nil
        }
    #endif
}
