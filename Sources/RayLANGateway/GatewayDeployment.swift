import Foundation
import RayLANCore

/// The gateway as a Ray Serve application running `raylan_gateway`: one ingress replica in front of the owner
/// actor that submits the tasks, creates the actors and holds the objects.
public struct GatewayDeployment: Sendable, Hashable {
    /// The application's name unless told otherwise.
    public static let defaultName = "raylan-gateway"

    /// The Serve application name. Default ``defaultName``.
    public var name: String
    /// Who may call it. Default ``ServiceAccess/key``. ``ServiceAccess/open`` is refused unless the cluster and
    /// its Serve proxy listen on loopback only: the gateway runs code.
    public var access: ServiceAccess
    /// Largest ``Gateway/put(_:)``, in bytes. Default 2 GiB.
    public var maxPutBytes: Int
    /// Largest JSON request (a call's inline arguments), in bytes. Default 64 MiB.
    public var maxJSONBytes: Int
    /// The most bytes of objects and kept results the gateway holds at once; a put or a kept call past it is
    /// refused (``GatewayError/Code/storeFull``). Default 8 GiB.
    public var maxHeldBytes: Int
    /// How long an object or kept result nobody uses is held before the gateway frees it. Default 24 hours.
    public var objectTTL: Duration

    public init(
        name: String = GatewayDeployment.defaultName, access: ServiceAccess = .key, maxPutBytes: Int = 2 << 30,
        maxJSONBytes: Int = 64 << 20, maxHeldBytes: Int = 8 << 30, objectTTL: Duration = .seconds(86_400)
    ) {
        self.maxHeldBytes = maxHeldBytes
        self.objectTTL = objectTTL
        self.name = name
        self.access = access
        self.maxPutBytes = maxPutBytes
        self.maxJSONBytes = maxJSONBytes
    }

    /// `/raylan/<name>`.
    public var routePrefix: String { "/raylan/\(name)" }

    /// The application in Serve's declarative config.
    /// The limits as the application's arguments: a running gateway with others is redeployed.
    var limitArguments: [String: JSONValue] {
        [
            "max_put_bytes": .number(Double(maxPutBytes)), "max_json_bytes": .number(Double(maxJSONBytes)),
            "max_held_bytes": .number(Double(maxHeldBytes)), "object_ttl_s": .number(objectTTL.seconds),
        ]
    }

    func applicationConfig(workingDirectoryURI: String, keyArguments: [String: JSONValue] = [:]) -> JSONValue {
        var args = limitArguments
        args["code_uri"] = .string(workingDirectoryURI)
        args.merge(keyArguments) { _, key in key }
        return .object([
            "name": .string(name),
            "route_prefix": .string(routePrefix),
            "import_path": .string("raylan_gateway.app:build"),
            "runtime_env": .object([
                "working_dir": .string(workingDirectoryURI),
                // The replica's handlers run on Serve's own event loop: one thread hop fewer per request.
                "env_vars": .object(["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": .string("0")]),
            ]),
            "args": .object(args),
            "deployments": .array([
                .object([
                    "name": .string("Gateway"),
                    "num_replicas": .number(1),
                    // Requests mostly wait on the owner (a call waits up to 60 s for its result): many at once.
                    "max_ongoing_requests": .number(4096),
                    // The ingress reserves no CPU, so that it never takes one from the calls it forwards.
                    "ray_actor_options": .object(["num_cpus": .number(0)]),
                    // An access-log line per call costs the replica more than forwarding the call.
                    "logging_config": .object(["enable_access_log": .bool(false)]),
                ])
            ]),
        ])
    }
}
