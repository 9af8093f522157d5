import Foundation
import RayLANCore

/// A failure on this machine: finding the Python environment with Ray, starting a process, or starting
/// the private local Ray (``LocalRay``, ``EmbeddedCluster``).
///
/// A struct with an extensible ``Code`` rather than an enum, so new cases never break callers:
/// compare with `error.code == .exitedDuringStart`. Failures of the cluster once it answers are
/// ``ClusterError``s; failures of `raylan up`'s own checks are ``HostNodeError``s.
public struct LocalRayError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No Python environment with Ray where RayLAN looked, or its Python or Ray cannot be run.
        public static let pythonMissing = Code("python_missing")
        /// A command could not be started at all (`posix_spawn` failed), or swift-subprocess could not follow a
        /// short command it started (read its output, wait for its exit).
        public static let spawnFailed = Code("spawn_failed")
        /// A short command RayLAN runs for its output (a version probe, `nvidia-smi`) printed more than RayLAN
        /// reads; it was killed with its process group.
        public static let outputTooLarge = Code("output_too_large")
        /// `ray start` exited before the cluster answered. On a busy machine Ray can miss its own start-up
        /// deadlines; ``LocalRay/start(_:)`` tries again.
        public static let exitedDuringStart = Code("exited_during_start")
        /// `ray start` runs, but the dashboard or the job agent did not answer within the start timeout.
        public static let startTimedOut = Code("start_timed_out")
        /// No free TCP port could be found for the cluster.
        public static let noFreePort = Code("no_free_port")
        /// RayLAN's state folder (its lock file) cannot be opened.
        public static let stateUnavailable = Code("state_unavailable")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What failed, repeating the input.
    public let message: String
    /// What to do about it.
    public let remedy: String?
    /// The cause, where there is one.
    public let underlying: (any Error & Sendable)?

    init(_ code: Code, _ message: String, remedy: String? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.underlying = underlying
    }

    public var description: String { sentence(message, remedy: remedy) }
    /// Always false: these are failures of this machine, not of the caller's input.
    public var isUsageError: Bool { false }
}
