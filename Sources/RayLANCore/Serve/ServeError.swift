import Foundation

/// A Serve deployment that could not be made, or a service that is not there.
public struct ServeError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Ray refused the config (HTTP 400).
        public static let rejected = Code("rejected")
        /// The application reached DEPLOY_FAILED (Ray's message has the traceback).
        public static let deployFailed = Code("deploy_failed")
        /// The application did not reach RUNNING in time.
        public static let timedOut = Code("timed_out")
        /// No such application.
        public static let notDeployed = Code("not_deployed")
        /// The running application serves another model than the one asked for (`--no-deploy`).
        public static let modelMismatch = Code("model_mismatch")
        /// A local model file is missing or too large.
        public static let invalidModel = Code("invalid_model")
        /// A service key file could not be read or holds no usable key.
        public static let keyUnreadable = Code("key_unreadable")
        /// RayLAN's cluster-side code (the `cluster/` folder) was not found.
        public static let clusterCodeMissing = Code("cluster_code_missing")
        /// A key of one's own (`--key-file`) or an open service (`--public`) on a cluster with token
        /// authentication, where every service's key is derived from the token (a usage error).
        public static let accessRefused = Code("access_refused")
    }

    public let code: Code
    public let message: String
    public let remedy: String?

    package init(_ code: Code, _ message: String, remedy: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
    }

    public var description: String { sentence(message, remedy: remedy) }

    /// Serve does not run application `name` (or it is not RUNNING).
    package static func notDeployed(_ name: String, on address: ClusterAddress) -> ServeError {
        ServeError(
            .notDeployed, "The detection service '\(name)' is not running on \(address)",
            remedy: "Deploy it with 'raylan serve deploy --model …' (or let 'raylan detect' deploy it).")
    }
    public var isUsageError: Bool { code == .invalidModel || code == .keyUnreadable || code == .accessRefused }
}
