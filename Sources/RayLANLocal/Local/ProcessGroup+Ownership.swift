#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore

extension ProcessGroup {
    /// A cluster whose recorded leader was proven to be the `ray start` that RayLAN started, and what tells
    /// its processes apart from everything else on the machine.
    ///
    /// Members are the leader (while it is still the process that started at ``startTime``), its
    /// descendants, and leftovers: processes of this user, started no earlier than the leader, with an
    /// argument `--<flag>=<dir>` or `--<flag>=<dir>/…` for the cluster's temp dir (Ray hands it to its
    /// processes as `--temp-dir=`, `--session-dir=`, `--log_dir=`, …), and their descendants. A path
    /// alone never makes a member: `tail -f <dir>/session_latest/logs/raylet.out` is not one.
    struct Ownership: Sendable, Hashable {
        var leader: pid_t
        /// The leader's start time, as recorded and as seen now (see ``ProcessIdentity/startTime``).
        var startTime: UInt64
        /// The cluster's temp dir, validated (see ``temporaryDirectoryProblem(_:)``).
        var temporaryDirectory: String
        /// The effective user id the cluster's processes run as: this process's.
        var user: uid_t

        /// The cluster's processes in `table`.
        func members(in table: [Entry]) -> [Entry] {
            var children: [pid_t: [Entry]] = [:]
            for entry in table { children[entry.parent, default: []].append(entry) }
            var queue = table.filter { ($0.pid == leader && $0.startTime == startTime) || isLeftover($0) }
            var result: [pid_t: Entry] = [:]
            while let entry = queue.popLast() {
                guard result[entry.pid] == nil else { continue }
                result[entry.pid] = entry
                queue += children[entry.pid] ?? []
            }
            return Array(result.values)
        }

        /// What to signal to reach `members`: `-group` for a group that is the cluster's (every process in it
        /// is a member, or it is the group RayLAN made for the leader, which still runs), other than this
        /// process's own group; the pid of each other member.
        func targets(_ members: [Entry], in table: [Entry], ownGroup: pid_t) -> [pid_t] {
            let memberPIDs = Set(members.map(\.pid))
            let foreignGroups = Set(table.filter { !memberPIDs.contains($0.pid) }.map(\.group))
            let leaderRuns = table.contains { $0.pid == leader && $0.startTime == startTime && $0.group == leader }
            var targets: [pid_t] = []
            for group in Set(members.map(\.group)).sorted() {
                let owned = !foreignGroups.contains(group) || (group == leader && leaderRuns)
                if group > 1 && group != ownGroup && owned {
                    targets.append(-group)
                } else {
                    targets += members.filter { $0.group == group }.map(\.pid)
                }
            }
            return targets
        }

        /// A process of this user, started no earlier than the leader, that carries the temp dir in a flag.
        func isLeftover(_ entry: Entry) -> Bool {
            guard entry.user == user, let started = entry.startTime, started >= startTime else { return false }
            return entry.arguments.contains { ProcessGroup.carries($0, directory: temporaryDirectory) }
        }
    }

    /// The outcome of checking a recorded cluster against the processes running now.
    enum Verdict: Sendable, Hashable {
        /// The leader is the process RayLAN started.
        case owned(Ownership)
        /// Nothing may be signalled or deleted, for this reason.
        case stale(String)
    }

    /// Checks that `leader` is still the `ray start` that RayLAN started: the recorded `identity` (start time
    /// and boot) matches the process with that pid now, it runs as this user, and its argv has the exact
    /// element `--temp-dir=<temporaryDirectory>`; and that `temporaryDirectory` is one RayLAN made.
    ///
    /// - Parameter leaderMayHaveExited: true only for a leader this process started (and may have reaped):
    ///   when it has exited, its leftovers are still the cluster's.
    static func verify(
        leader: pid_t, identity: ProcessIdentity?, temporaryDirectory: String, leaderMayHaveExited: Bool = false
    ) -> Verdict {
        guard let identity else {
            return .stale("the record does not say when that process started: an older RayLAN wrote it")
        }
        if let problem = temporaryDirectoryProblem(temporaryDirectory) {
            return .stale("its temp dir \(temporaryDirectory) is not RayLAN's: \(problem)")
        }
        guard let boot = ProcessIdentity.currentBootID, boot == identity.bootID else {
            return .stale("the machine has restarted since")
        }
        let ownership = Ownership(
            leader: leader, startTime: identity.startTime, temporaryDirectory: temporaryDirectory, user: geteuid())
        guard let entry = processTable().first(where: { $0.pid == leader }) else {
            return leaderMayHaveExited ? .owned(ownership) : .stale("it has exited")
        }
        guard entry.startTime == identity.startTime else {
            return .stale("the pid now belongs to another process, started at another time")
        }
        guard entry.user == ownership.user else {
            return .stale("it runs as uid \(entry.user.map(String.init) ?? "?"), not as this user")
        }
        guard entry.arguments.contains("--temp-dir=\(temporaryDirectory)") else {
            return .stale("its command line has no --temp-dir=\(temporaryDirectory)")
        }
        return .owned(ownership)
    }

    /// Whether `argument` is `--<flag>=<directory>` or `--<flag>=<directory>/…`.
    static func carries(_ argument: String, directory: String) -> Bool {
        guard argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") else { return false }
        let flag = argument[argument.index(argument.startIndex, offsetBy: 2)..<equals]
        guard !flag.isEmpty, flag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { return false }
        let value = argument[argument.index(after: equals)...]
        return value == directory || value.hasPrefix(directory + "/")
    }

    /// Why `path` is not a temp dir as ``LocalRay`` makes them (an absolute `<parent>/rl-` + 8 lowercase hex
    /// digits, without `.` or `..`; a directory, not a link, owned by this user); nil when it is one.
    static func temporaryDirectoryProblem(_ path: String) -> String? {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard path.hasPrefix("/"), components.count >= 2,
            !components.dropFirst().contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
        else { return "not a plain absolute path" }
        let name = components[components.count - 1]
        guard name.count == 11, name.hasPrefix("rl-"), name.dropFirst(3).allSatisfy({ "0123456789abcdef".contains($0) })
        else { return "its name is not rl- and 8 lowercase hex digits" }
        // attributesOfItem does not follow a link at the end of the path (lstat).
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            return "it does not exist"
        }
        guard attributes[.type] as? FileAttributeType == .typeDirectory else { return "not a directory" }
        let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value
        guard owner == UInt32(geteuid()) else {
            return "owned by uid \(owner.map(String.init) ?? "?"), not by this user (uid \(geteuid()))"
        }
        return nil
    }
}
