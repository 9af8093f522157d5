#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore

/// What proves later that a pid still names the process RayLAN started: the process's start time and the
/// boot it started in. A pid alone proves nothing: pids are reused, and after a restart the recorded pid
/// names an unrelated process (`systemd --user`, a shell).
public struct ProcessIdentity: Sendable, Codable, Hashable {
    /// When the process started. Linux: clock ticks after boot (field 22, `starttime`, of
    /// `/proc/<pid>/stat`); macOS: microseconds since 1970 (`kp_proc.p_starttime`).
    public var startTime: UInt64
    /// The boot the process started in. Linux: `/proc/sys/kernel/random/boot_id`; macOS: `kern.boottime`.
    public var bootID: String

    public init(startTime: UInt64, bootID: String) {
        self.startTime = startTime
        self.bootID = bootID
    }

    /// The identity of the running process `pid`; nil when it does not run or cannot be read.
    public static func of(_ pid: pid_t) -> ProcessIdentity? {
        guard let bootID = currentBootID, let startTime = startTime(of: pid) else { return nil }
        return ProcessIdentity(startTime: startTime, bootID: bootID)
    }

    /// The id of the current boot; nil when it cannot be read.
    public static var currentBootID: String? {
        #if os(Linux)
            let text = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return id.isEmpty ? nil : id
        #elseif canImport(Darwin)
            var boot = timeval()
            var size = MemoryLayout<timeval>.size
            guard sysctlbyname("kern.boottime", &boot, &size, nil, 0) == 0 else { return nil }
            return "\(boot.tv_sec).\(boot.tv_usec)"
        #else
            return nil
        #endif
    }

    /// When `pid` started (see ``startTime``); nil when it does not run or cannot be read.
    static func startTime(of pid: pid_t) -> UInt64? {
        #if os(Linux)
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
            return ProcessGroup.StatLine(stat)?.startTime
        #elseif canImport(Darwin)
            var info = kinfo_proc()
            var size = MemoryLayout<kinfo_proc>.stride
            var name: [Int32] = [CTL_KERN, KERN_PROC, KERN_PROC_PID, pid]
            guard sysctl(&name, u_int(name.count), &info, &size, nil, 0) == 0, size > 0 else { return nil }
            let start = info.kp_proc.p_un.__p_starttime
            return UInt64(start.tv_sec) * 1_000_000 + UInt64(start.tv_usec)
        #else
            return nil
        #endif
    }
}
