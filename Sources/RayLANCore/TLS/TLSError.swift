/// A failure of the head's side of TLS: its identity (key and certificate) or its front.
///
/// A struct with an extensible ``Code`` rather than an enum, so new cases never break callers:
/// compare with `error.code == .identityUnusable`. A client's refusal of a certificate is a ``ClusterError``
/// (`certificateMismatch`, `certificateUnknown`, `notTLS`).
public struct TLSError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The head's TLS identity (its key and certificate in RayLAN's home) cannot be made or read.
        public static let identityUnusable = Code("identity_unusable")
        /// The TLS front (the process that serves the dashboard and Serve on the LAN) did not start.
        public static let frontFailed = Code("front_failed")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What failed, repeating the input.
    public let message: String
    /// What to do about it.
    public let remedy: String?

    package init(_ code: Code, _ message: String, remedy: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
    }

    public var description: String { sentence(message, remedy: remedy) }
    public var isUsageError: Bool { false }
}
