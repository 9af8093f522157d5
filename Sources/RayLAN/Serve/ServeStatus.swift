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
        /// UPDATING, HEALTHY, UNHEALTHY, DEPLOY_FAILED, UPSCALING, DOWNSCALING.
        public var status: String?
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
        /// NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING.
        public var status: ServeApplicationStatus
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
        /// STARTING, HEALTHY, UNHEALTHY, DRAINING, DRAINED.
        public var status: String?

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
}

/// TEMPORARY (replaced at merge by the typed states branch).
public struct ServeApplicationStatus: Sendable, Hashable, Codable, CustomStringConvertible, RawRepresentable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let running = ServeApplicationStatus(rawValue: "RUNNING")
    public static let deploying = ServeApplicationStatus(rawValue: "DEPLOYING")
    public static let deployFailed = ServeApplicationStatus(rawValue: "DEPLOY_FAILED")
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    public var description: String { rawValue }
}

