/// Ray Serve's state as `GET /api/serve/applications/` reports it (the parts RayLAN shows).
public struct ServeStatus: Sendable, Hashable, Codable {
    /// One replica of a deployment.
    public struct Replica: Sendable, Hashable, Codable {
        public var replicaID: String?
        public var state: String?
        public var nodeIP: String?
        public var pid: Int?

        enum CodingKeys: String, CodingKey {
            case replicaID = "replica_id"
            case state
            case nodeIP = "node_ip"
            case pid
        }
    }

    /// One deployment of an application.
    public struct Deployment: Sendable, Hashable, Codable {
        public var name: String
        /// The deployment's health; nil where Ray did not report one.
        public var status: DeploymentStatus?
        public var message: String?
        public var targetNumReplicas: Int?
        public var replicas: [Replica]?

        enum CodingKeys: String, CodingKey {
            case name, status, message
            case targetNumReplicas = "target_num_replicas"
            case replicas
        }
    }

    /// One application.
    public struct Application: Sendable, Hashable, Codable {
        public var name: String
        public var routePrefix: String?
        /// Where the application is in its life (RUNNING once every deployment is healthy).
        public var status: ApplicationStatus
        /// Ray's message; the traceback when a deploy failed.
        public var message: String?
        public var deployments: [String: Deployment]?
        /// The config the application was deployed with, kept so that other deploys can re-send it.
        public var deployedAppConfig: JSONValue?

        enum CodingKeys: String, CodingKey {
            case name
            case routePrefix = "route_prefix"
            case status, message, deployments
            case deployedAppConfig = "deployed_app_config"
        }
    }

    /// Serve's HTTP proxy settings.
    public struct HTTPOptions: Sendable, Hashable, Codable {
        public var host: String?
        public var port: Int?
    }

    /// Serve's HTTP proxy on one node.
    public struct Proxy: Sendable, Hashable, Codable {
        public var nodeIP: String?
        /// The proxy's health; nil where Ray did not report one.
        public var status: ProxyStatus?

        enum CodingKeys: String, CodingKey {
            case nodeIP = "node_ip"
            case status
        }
    }

    public var applications: [String: Application]
    public var httpOptions: HTTPOptions?
    /// The proxies by node id; empty when Serve is not running.
    public var proxies: [String: Proxy]?

    enum CodingKeys: String, CodingKey {
        case applications
        case httpOptions = "http_options"
        case proxies
    }

    /// Whether Serve runs at all.
    public var isRunning: Bool { !applications.isEmpty }

    /// An application's state as Ray Serve reports it. A struct, so a state that a newer Ray adds still
    /// decodes; it encodes as Ray's own string.
    public struct ApplicationStatus: StringValue {
        /// Ray's own spelling, such as `RUNNING`.
        public var rawValue: String
        /// A state by Ray's spelling; any string is accepted.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Not deployed yet.
        public static let notStarted = ApplicationStatus(rawValue: "NOT_STARTED")
        /// Its deployments are starting or updating.
        public static let deploying = ApplicationStatus(rawValue: "DEPLOYING")
        /// A deployment could not start; the application's `message` has Ray's traceback.
        public static let deployFailed = ApplicationStatus(rawValue: "DEPLOY_FAILED")
        /// Every deployment is healthy: requests are served.
        public static let running = ApplicationStatus(rawValue: "RUNNING")
        /// A deployment failed its health checks after it had run.
        public static let unhealthy = ApplicationStatus(rawValue: "UNHEALTHY")
        /// Being removed.
        public static let deleting = ApplicationStatus(rawValue: "DELETING")

    }

    /// A deployment's state as Ray Serve reports it. A struct, so a state that a newer Ray adds still
    /// decodes; it encodes as Ray's own string.
    public struct DeploymentStatus: StringValue {
        /// Ray's own spelling, such as `RUNNING`.
        public var rawValue: String
        /// A state by Ray's spelling; any string is accepted.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Replicas are starting or being replaced.
        public static let updating = DeploymentStatus(rawValue: "UPDATING")
        /// Every replica runs and passes its health check.
        public static let healthy = DeploymentStatus(rawValue: "HEALTHY")
        /// A replica failed its health check.
        public static let unhealthy = DeploymentStatus(rawValue: "UNHEALTHY")
        /// The deployment could not start (its constructor raised, or no node fits its resources).
        public static let deployFailed = DeploymentStatus(rawValue: "DEPLOY_FAILED")
        /// The autoscaler is adding replicas.
        public static let upscaling = DeploymentStatus(rawValue: "UPSCALING")
        /// The autoscaler is removing replicas.
        public static let downscaling = DeploymentStatus(rawValue: "DOWNSCALING")

    }

    /// The state of Serve's HTTP proxy on one node. A struct, so a state that a newer Ray adds still
    /// decodes; it encodes as Ray's own string.
    public struct ProxyStatus: StringValue {
        /// Ray's own spelling, such as `RUNNING`.
        public var rawValue: String
        /// A state by Ray's spelling; any string is accepted.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Starting on its node.
        public static let starting = ProxyStatus(rawValue: "STARTING")
        /// The proxy answers.
        public static let healthy = ProxyStatus(rawValue: "HEALTHY")
        /// The proxy failed its health check.
        public static let unhealthy = ProxyStatus(rawValue: "UNHEALTHY")
        /// Finishing the requests in flight and taking no new ones (its node is going away).
        public static let draining = ProxyStatus(rawValue: "DRAINING")
        /// Drained; about to stop.
        public static let drained = ProxyStatus(rawValue: "DRAINED")

    }
}
