import Foundation
import RayLANCore

/// A refusal of `raylan up` (``HostNode``) before or instead of starting Ray on this host: a node or a
/// port already in use, versions that differ from the head's, a bad address or GPU selection, a head that
/// would run without authentication unasked.
///
/// A struct with an extensible ``Code`` rather than an enum, so new cases never break callers:
/// compare with `error.code == .versionMismatch`. Starting Ray itself fails with a ``LocalRayError``;
/// reaching or authenticating with the head with a ``ClusterError``.
public struct HostNodeError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// RayLAN already runs a Ray node on this host.
        public static let alreadyRunning = Code("already_running")
        /// A pinned port is taken (another Ray, or another program).
        public static let portInUse = Code("port_in_use")
        /// This host's Ray or Python version differs from the head's; Ray refuses such a node.
        public static let versionMismatch = Code("version_mismatch")
        /// A value given by the user (an address, `--bind`, `--gpus`) does not fit this host (a usage error).
        public static let invalidArgument = Code("invalid_argument")
        /// A head was asked for with token authentication, and this host's Ray (older than 2.52) has none;
        /// `--insecure` accepts a head without it (a usage error).
        public static let authenticationUnavailable = Code("authentication_unavailable")
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
    /// True for ``Code/invalidArgument`` and ``Code/authenticationUnavailable``: the input was wrong, not the host.
    public var isUsageError: Bool { code == .invalidArgument || code == .authenticationUnavailable }
}
