import Foundation

/// A job request that failed. A job that FAILED is a normal result (``JobInfo/status``), not an error.
public struct JobError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The spec is invalid (checked before any network traffic).
        public static let invalidSpec = Code("invalid_spec")
        /// No job with that id.
        public static let notFound = Code("not_found")
        /// The submission id is taken.
        public static let alreadyExists = Code("already_exists")
        /// Ray refused the submission.
        public static let rejected = Code("rejected")
        /// The job is still running (delete needs a finished job).
        public static let notTerminal = Code("not_terminal")
        /// Waiting for the job took longer than allowed.
        public static let timedOut = Code("timed_out")
    }

    public let code: Code
    public let message: String
    public let remedy: String?
    /// Ray's raw answer, where there was one.
    public let responseBody: String?

    init(_ code: Code, _ message: String, remedy: String? = nil, responseBody: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.responseBody = responseBody
    }

    public var description: String { sentence(message, remedy: remedy) }
    public var isUsageError: Bool { code == .invalidSpec }

    static func invalidSpec(_ message: String, remedy: String) -> JobError {
        JobError(.invalidSpec, message, remedy: remedy)
    }

    static func notFound(_ id: String, at address: ClusterAddress) -> JobError {
        JobError(
            .notFound, "No job '\(id)' on the cluster at \(address.host):\(address.port)",
            remedy: "List the jobs with 'raylan job list'.")
    }
}
