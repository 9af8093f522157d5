/// How RayLAN talks to a cluster. Every parameter has a documented default.
extension RayCluster {
    public struct Configuration: Sendable {
        /// Time limits for HTTP requests.
        public struct Timeouts: Sendable {
            /// Giving up on a TCP connection. Default 3 s: a LAN host answers in milliseconds, and an
            /// unreachable address should fail fast.
            public var connect: Duration
            /// One whole request, body included. Default 60 s (package uploads get ``upload``).
            public var request: Duration
            /// A package upload (up to 100 MiB). Default 10 minutes.
            public var upload: Duration

            public init(
                connect: Duration = .seconds(3), request: Duration = .seconds(60), upload: Duration = .seconds(600)
            ) {
                self.connect = connect
                self.request = request
                self.upload = upload
            }
        }

        /// The token sent as `Authorization: Bearer`; nil sends none. Default nil.
        public var token: AuthToken?
        /// Time limits. Default ``Timeouts/init(connect:request:upload:)``.
        public var timeouts: Timeouts
        /// The `User-Agent` header. Ray refuses POSTs from agents that start with "Mozilla", so this
        /// must not. Default `RayLAN/<version>`.
        public var userAgent: String

        public init(
            token: AuthToken? = nil, timeouts: Timeouts = Timeouts(),
            userAgent: String = "RayLAN/\(RayLANVersion.current)"
        ) {
            self.token = token
            self.timeouts = timeouts
            self.userAgent = userAgent.hasPrefix("Mozilla") ? "RayLAN/\(RayLANVersion.current)" : userAgent
        }
    }
}

/// RayLAN's own version.
public enum RayLANVersion {
    public static let current = "0.1.0"
}
