/// How RayLAN talks to a cluster. Every parameter has a documented default.
extension RayCluster {
    public struct Configuration: Sendable {
        /// Time limits for HTTP requests.
        ///
        /// A request ends with an error at whichever limit comes first: ``request`` (or ``upload``) for the
        /// whole exchange, or ``read`` for silence, while waiting for the answer or in the middle of its body
        /// (a dropped Wi-Fi link sends nothing and closes nothing: only the read limit ends such a request).
        public struct Timeouts: Sendable {
            /// Giving up on a TCP connection. Default 3 s: a LAN host answers in milliseconds, and an
            /// unreachable address should fail fast.
            public var connect: Duration
            /// One whole request, body included. Default 60 s (package uploads get ``upload``).
            public var request: Duration
            /// A package upload (up to 100 MiB). Default 10 minutes.
            public var upload: Duration
            /// The longest silence once the request is sent: until the answer's first byte (so it also bounds
            /// how long the server may think, e.g. one detection request's inference) and between any two
            /// reads of its body; also the longest a request body (an upload) may wait for the server to take more.
            /// Default 60 s. Applies to every request of one ``RayCluster``.
            public var read: Duration

            public init(
                connect: Duration = .seconds(3), request: Duration = .seconds(60), upload: Duration = .seconds(600),
                read: Duration = .seconds(60)
            ) {
                self.connect = connect
                self.request = request
                self.upload = upload
                self.read = read
            }
        }

        /// Which TLS certificates to trust beyond a pin (``ClusterAddress/pin``), for `https` addresses.
        public struct Trust: Sendable {
            /// Trust a server's certificate that is neither pinned, nor recorded, nor trusted by the system, and
            /// record it (SSH's trust on first use). Default false: such a server is refused.
            public var onFirstUse: Bool
            /// Where pins are read and recorded. Default ``KnownHosts/init(file:)`` in RayLAN's home; nil reads
            /// and records none.
            public var knownHosts: KnownHosts?

            public init(onFirstUse: Bool = false, knownHosts: KnownHosts? = KnownHosts()) {
                self.onFirstUse = onFirstUse
                self.knownHosts = knownHosts
            }
        }

        /// The token sent as `Authorization: Bearer`; nil sends none. Default nil.
        public var token: AuthToken?
        /// Which certificates to trust. Default ``Trust/init(onFirstUse:knownHosts:)``.
        public var trust: Trust
        /// Time limits. Default ``Timeouts/init(connect:request:upload:read:)``.
        public var timeouts: Timeouts
        /// The `User-Agent` header. Ray refuses POSTs from agents that start with "Mozilla", so this
        /// must not. Default `RayLAN/<version>`.
        public var userAgent: String
        /// The most requests on the wire to one server (the dashboard, a Serve proxy) at a time, each on its
        /// own connection. Further requests wait their turn, first come first served; the wait counts toward
        /// their own time limit. Values below 1 count as 1. Default 256.
        public var requestsInFlightPerServer: Int

        public init(
            token: AuthToken? = nil, timeouts: Timeouts = Timeouts(),
            userAgent: String = "RayLAN/\(RayLANVersion.current)", requestsInFlightPerServer: Int = 256,
            trust: Trust = Trust()
        ) {
            self.token = token
            self.trust = trust
            self.timeouts = timeouts
            self.requestsInFlightPerServer = requestsInFlightPerServer
            self.userAgent = userAgent.hasPrefix("Mozilla") ? "RayLAN/\(RayLANVersion.current)" : userAgent
        }
    }
}

/// RayLAN's own version.
public enum RayLANVersion {
    public static let current = "0.1.0"
}
