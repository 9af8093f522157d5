import RayLANCore
/// How to start a private Ray on this machine. Every parameter has a documented default.
public struct LocalRayConfiguration: Sendable {
    /// The Python environment with Ray.
    public var environment: RayEnvironment
    /// Logical CPUs Ray offers. Default nil: every core.
    public var cpus: Int?
    /// Logical GPUs Ray offers. Default nil: the GPUs Ray detects. A number works without a real GPU,
    /// which tests use to place jobs on logical GPUs.
    public var gpus: Double?
    /// Custom logical resources. Default none.
    public var resources: [String: Double]
    /// Object store size in bytes. Default nil: Ray's default (30% of memory).
    public var objectStoreBytes: Int?
    /// With a token, the cluster runs with `RAY_AUTH_MODE=token` (Ray 2.52+); the started ``LocalRay``
    /// records the token's source, never its value. Default nil: no authentication
    /// (`RAY_AUTH_MODE=disabled`, so a stray ~/.ray/auth_token does not switch it on).
    public var authToken: AuthToken?
    /// Extra environment variables for Ray. Default none.
    public var extraEnvironment: [String: String]
    /// The address the dashboard binds to. Default 127.0.0.1: the embedded cluster is private.
    public var dashboardHost: String
    /// Where the private temp dir is made. Default `/tmp` (Ray's socket paths must stay short).
    public var temporaryParent: String
    /// How long to wait for the dashboard and the job agent. Default 120 s.
    public var startTimeout: Duration
    /// The ports to use. Default nil: ten free ports, picked at start.
    public var ports: LocalRay.Ports?
    /// Join the cluster whose GCS is at `HOST:PORT` instead of starting a head. Default nil: a head. The
    /// dashboard waited on is then `dashboardHost` at `ports.dashboard` (the head's).
    public var joinAddress: String?
    /// The Serve proxy guard's module file (`ClusterCode.serveGuard`): with a token, Serve's proxy then
    /// answers 401 to every request without a RayLAN service key derived from it, before any replica sees it
    /// (Ray's `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`; the file is copied alone into the cluster's temp
    /// dir, on its `PYTHONPATH`). Default nil: no guard.
    public var serveGuard: String?
    /// The node's own address (`--node-ip-address`). Default nil: Ray picks one, except for a private
    /// cluster (see ``isPrivate``), which is given 127.0.0.1.
    public var nodeAddress: String?
    /// A joining node: the head's certificate pin, when its dashboard is behind a TLS front; the dashboard
    /// waited on is then reached over `https` with that pin. Default nil: plain HTTP.
    public var dashboardPin: CertificatePin?

    /// Whether every listener of the cluster stays on loopback: a head (no ``joinAddress``) whose dashboard
    /// binds to a loopback address and with no ``nodeAddress`` of another kind. Such a cluster is started with
    /// `--node-ip-address=127.0.0.1` and `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, Ray's own single-machine
    /// mode (the default on macOS), so that its GCS, raylet, object manager, agents, metrics, Ray Client
    /// server and workers bind to 127.0.0.1 rather than every interface or the LAN address.
    public var isPrivate: Bool {
        joinAddress == nil && ClusterAddress.isLoopbackHost(dashboardHost)
            && (nodeAddress.map(ClusterAddress.isLoopbackHost) ?? true)
    }

    public init(
        environment: RayEnvironment, cpus: Int? = nil, gpus: Double? = nil, resources: [String: Double] = [:],
        objectStoreBytes: Int? = nil, authToken: AuthToken? = nil, extraEnvironment: [String: String] = [:],
        dashboardHost: String = "127.0.0.1", temporaryParent: String = "/tmp", startTimeout: Duration = .seconds(120),
        ports: LocalRay.Ports? = nil, joinAddress: String? = nil, nodeAddress: String? = nil,
        serveGuard: String? = nil, dashboardPin: CertificatePin? = nil
    ) {
        self.dashboardPin = dashboardPin
        self.serveGuard = serveGuard
        self.ports = ports
        self.joinAddress = joinAddress
        self.nodeAddress = nodeAddress
        self.environment = environment
        self.cpus = cpus
        self.gpus = gpus
        self.resources = resources
        self.objectStoreBytes = objectStoreBytes
        self.authToken = authToken
        self.extraEnvironment = extraEnvironment
        self.dashboardHost = dashboardHost
        self.temporaryParent = temporaryParent
        self.startTimeout = startTimeout
    }
}
