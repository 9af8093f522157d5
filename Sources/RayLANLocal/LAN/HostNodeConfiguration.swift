import Foundation
import RayLANCore

/// How `raylan up` starts a Ray node on this host. Every parameter has a documented default.
public struct HostNodeConfiguration: Sendable {
    /// A head, or a node that joins the head at `head` (its address or host name).
    public enum Role: Sendable, Hashable {
        case head
        case join(head: String)
    }

    public var role: Role
    /// The Python environment with Ray.
    public var environment: RayEnvironment
    /// This node's address. Default nil: a head uses the address facing the default route and binds the
    /// dashboard to every interface; a joining node uses the address facing the head.
    public var bind: String?
    /// Which GPUs Ray gets. Default `.all`.
    public var gpus: GPUSelection
    /// Logical CPUs. Default nil: every core.
    public var cpus: Int?
    /// The head's GCS port; the node ports follow it (see ``LocalRay/Ports/pinned(gcs:dashboard:serve:)``).
    /// Default 6379.
    public var gcsPort: Int
    /// The head's dashboard port. Default 8265.
    public var dashboardPort: Int
    /// Serve's HTTP proxy port on every node. Default 8000.
    public var servePort: Int
    /// No token authentication. Default false: on, which needs Ray ≥ 2.52; a head on an older Ray is refused
    /// (``HostNodeError/Code/authenticationUnavailable``) unless this is true.
    public var insecure: Bool
    /// Head: where the cluster token is kept, made with mode 0600 when missing (see
    /// ``AuthToken/loadOrCreate(at:via:)``). Default nil: `$RAYLAN_HOME/cluster-token`. Not used when joining.
    public var tokenFile: String?
    /// Joining node: the head's token (e.g. from ``AuthToken/resolve(tokenFile:environment:)``). Default nil:
    /// none, for a head without token authentication. Not used by a head.
    public var token: AuthToken?
    /// Where the node is recorded. Default `$RAYLAN_HOME` (`~/.raylan`).
    public var stateDirectory: String
    /// How long to wait for the node to come up. Default 180 s.
    public var startTimeout: Duration
    /// The Serve proxy guard to install on this node (``LocalRayConfiguration/serveGuard``): with a token,
    /// Serve's proxy here refuses every request without a RayLAN service key before a replica sees it. Default
    /// nil: none.
    public var serveGuard: String?
    /// Joining node: the head's certificate fingerprint, as `raylan up --head` printed it. Default nil: the pin
    /// this host recorded for the head (``KnownHosts``), else ``trust`` decides. Not used by a head.
    public var fingerprint: CertificatePin?
    /// Joining node: which head certificates to trust without a fingerprint. Default: recorded ones only.
    public var trust: RayCluster.Configuration.Trust
    /// Head: the `raylan` executable that runs the TLS front (`raylan tls-front`). Default: this process's own.
    public var frontExecutable: String

    public init(
        role: Role, environment: RayEnvironment, bind: String? = nil, gpus: GPUSelection = .all, cpus: Int? = nil,
        gcsPort: Int = LocalRay.Ports.defaultGCS, dashboardPort: Int = LocalRay.Ports.defaultDashboard,
        servePort: Int = LocalRay.Ports.defaultServe, insecure: Bool = false, tokenFile: String? = nil,
        token: AuthToken? = nil, stateDirectory: String = RayLANHome.path(), startTimeout: Duration = .seconds(180),
        serveGuard: String? = nil, fingerprint: CertificatePin? = nil,
        trust: RayCluster.Configuration.Trust = .init(),
        frontExecutable: String = Bundle.main.executablePath ?? "raylan"
    ) {
        self.serveGuard = serveGuard
        self.fingerprint = fingerprint
        self.trust = trust
        self.frontExecutable = frontExecutable
        self.role = role
        self.environment = environment
        self.bind = bind
        self.gpus = gpus
        self.cpus = cpus
        self.gcsPort = gcsPort
        self.dashboardPort = dashboardPort
        self.servePort = servePort
        self.insecure = insecure
        self.tokenFile = tokenFile
        self.token = token
        self.stateDirectory = stateDirectory
        self.startTimeout = startTimeout
    }
}
