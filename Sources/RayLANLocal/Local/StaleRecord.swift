import RayLANCore
/// A record of a Ray that RayLAN started (`local-cluster.json`, `node.json`) that no longer describes it:
/// its pid has exited or names another process (another start time, another boot, no `--temp-dir=` of
/// RayLAN's in its command line), the record is too old to say, or its temp dir is not RayLAN's. Such a
/// record is removed; no process is signalled and nothing of its temp dir is deleted.
public struct StaleRecord: Sendable, Hashable, CustomStringConvertible {
    /// The record's file, where it came from one.
    public var file: String?
    /// The recorded pid of `ray start`.
    public var pid: Int32
    /// Why the pid is not (or no longer provably) RayLAN's Ray.
    public var reason: String

    public init(file: String? = nil, pid: Int32, reason: String) {
        self.file = file
        self.pid = pid
        self.reason = reason
    }

    public var description: String {
        "Stale record removed\(file.map { " (\($0))" } ?? ""): pid \(pid) is no longer the Ray that RayLAN "
            + "started (\(reason)). No process was signalled and nothing was deleted."
    }
}
