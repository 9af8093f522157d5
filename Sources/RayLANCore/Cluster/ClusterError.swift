import Foundation

/// A failure to reach, authenticate with or understand a Ray cluster.
///
/// A struct with an extensible ``Code`` rather than an enum, so new cases never break callers:
/// compare with `error.code == .unauthorized`.
public struct ClusterError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The address could not be parsed.
        public static let invalidAddress = Code("invalid_address")
        /// No connection could be made (refused, timed out, no route).
        public static let unreachable = Code("unreachable")
        /// HTTP 401: the cluster wants a token and none was sent.
        public static let unauthorized = Code("unauthorized")
        /// HTTP 403: the token sent was refused.
        public static let forbidden = Code("forbidden")
        /// The cluster's Ray version is outside the supported range.
        public static let unsupportedVersion = Code("unsupported_version")
        /// The server answered with an unexpected HTTP status.
        public static let serverError = Code("server_error")
        /// The server's answer could not be understood.
        public static let invalidResponse = Code("invalid_response")
        /// A token file could not be read, or is empty.
        public static let tokenUnreadable = Code("token_unreadable")
        /// A new token file could not be written.
        public static let tokenUnwritable = Code("token_unwritable")
        /// The request needs a feature the cluster's Ray version lacks.
        public static let unsupportedFeature = Code("unsupported_feature")
        /// The server answered with more bytes than the request accepts.
        public static let responseTooLarge = Code("response_too_large")
        /// A `--fingerprint` that is not `sha256:` and 64 hex digits (a usage error).
        public static let invalidFingerprint = Code("invalid_fingerprint")
        /// The server's certificate is not the pinned one (`--fingerprint`, or the one `known_hosts` holds for
        /// it): a changed head, or someone in the middle. Nothing was sent beyond the TLS handshake.
        public static let certificateMismatch = Code("certificate_mismatch")
        /// The server's certificate is neither pinned, nor known from an earlier connection, nor trusted by the
        /// system, and trust on first use was not asked for. Nothing was sent beyond the TLS handshake.
        public static let certificateUnknown = Code("certificate_unknown")
        /// An `https` address whose server does not speak TLS (e.g. a Ray dashboard on plain HTTP).
        public static let notTLS = Code("not_tls")
        /// `known_hosts` could not be read or written.
        public static let knownHostsUnusable = Code("known_hosts_unusable")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What failed, repeating the input.
    public let message: String
    /// What to do about it.
    public let remedy: String?
    /// The HTTP status, for server answers.
    public let status: Int?
    /// The raw response body, for server answers (truncated to 4 KiB).
    public let responseBody: String?
    /// The cause, where there is one.
    public let underlying: (any Error & Sendable)?

    package init(
        _ code: Code, _ message: String, remedy: String? = nil, status: Int? = nil,
        responseBody: String? = nil, underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.status = status
        self.responseBody = responseBody.map { String($0.prefix(4096)) }
        self.underlying = underlying
    }

    public var description: String { sentence(message, remedy: remedy) }
    /// True for an address that does not parse and a token file that cannot be read or written: the
    /// input was wrong, not the cluster.
    public var isUsageError: Bool {
        code == .invalidAddress || code == .tokenUnreadable || code == .tokenUnwritable || code == .invalidFingerprint
    }

    static func invalidAddress(_ text: String, reason: String) -> ClusterError {
        ClusterError(
            .invalidAddress, "Invalid cluster address '\(text)': \(reason)",
            remedy:
                "Use HOST, HOST:PORT, https://HOST:PORT or http://HOST:PORT of the Ray dashboard, e.g. 192.168.1.130 or 192.168.1.130:8265."
        )
    }

    static func unreachable(
        _ address: ClusterAddress, reason: String, underlying: (any Error & Sendable)?
    ) -> ClusterError {
        ClusterError(
            .unreachable,
            "Cannot reach the Ray dashboard at \(address.host):\(address.port) (\(reason))",
            remedy:
                "Is the head up there ('raylan up --head', or Ray with --dashboard-host=0.0.0.0), and is port \(address.port) open in the firewall on \(address.host)?",
            underlying: underlying)
    }

    /// Serve's HTTP proxy (not the dashboard) could not be reached.
    static func serveProxyUnreachable(
        _ proxy: ClusterAddress, reason: String, underlying: (any Error & Sendable)?
    ) -> ClusterError {
        ClusterError(
            .unreachable, "Cannot reach the Serve proxy at \(proxy.host):\(proxy.port) (\(reason))",
            remedy:
                "Is the service deployed ('raylan serve status'), and is port \(proxy.port) open in the firewall on \(proxy.host)?",
            underlying: underlying)
    }

    static func unauthorized(_ address: ClusterAddress, body: String) -> ClusterError {
        ClusterError(
            .unauthorized,
            "The Ray cluster at \(address.host):\(address.port) requires a token (HTTP 401) and none was sent",
            remedy:
                "Copy the head's token file to this machine (~/.raylan/cluster-token where 'raylan up --head' made it, else ~/.ray/auth_token) and pass --token-file FILE, or set RAY_AUTH_TOKEN.",
            status: 401, responseBody: body)
    }

    static func forbidden(_ address: ClusterAddress, tokenSource: AuthToken.Source?, body: String) -> ClusterError {
        let source = tokenSource.map { " (from \($0))" } ?? ""
        return ClusterError(
            .forbidden,
            "The Ray cluster at \(address.host):\(address.port) refused the token\(source) (HTTP 403)",
            remedy:
                "Use the token the cluster was started with: run 'ray get-auth-token' on the head and pass it with --token-file or RAY_AUTH_TOKEN.",
            status: 403, responseBody: body)
    }

    static func server(_ what: String, status: Int, body: String, remedy: String? = nil) -> ClusterError {
        ClusterError(
            .serverError, "\(what) failed: HTTP \(status): \(RayMessage.extract(from: body))", remedy: remedy,
            status: status, responseBody: body)
    }

    static func responseTooLarge(_ what: String, limit: Int) -> ClusterError {
        ClusterError(
            .responseTooLarge,
            "The answer to \(what) is larger than the \(limit) bytes accepted",
            remedy: "Ask for less at once (fewer images per request), or check that the address is the right server.")
    }

    static func invalidResponse(_ what: String, body: String, underlying: (any Error & Sendable)?) -> ClusterError {
        ClusterError(
            .invalidResponse, "Could not understand the answer to \(what)",
            remedy: "Is this a Ray dashboard of a supported version (\(RayVersion.supportedRange))?",
            responseBody: body, underlying: underlying)
    }
}
