import Foundation
import NIOHTTP1

extension RayCluster {
    /// Serve's applications, deployments and replicas (`GET /api/serve/applications/`).
    public func serveStatus() async throws -> ServeStatus {
        let response = try await send(.GET, "/api/serve/applications/")
        guard response.status == 200 else {
            throw ClusterError.server("Reading Serve's status", status: response.status, body: response.text)
        }
        return try decode(ServeStatus.self, from: response, what: "GET /api/serve/applications/")
    }

    /// Deploys (or updates) a detection service and waits until it runs.
    ///
    /// Uploads RayLAN's cluster code (and a local model file) as the application's working directory,
    /// then PUTs Serve's config with every other application it already runs kept as deployed (Serve's
    /// PUT is declarative: an application left out would be removed).
    ///
    /// - Parameters:
    ///   - deployment: the model and knobs.
    ///   - code: where `raylan_detect` is. Default ``ClusterCode/locate(environment:executablePath:)``.
    ///   - httpPort: the Serve proxy's port when Serve is not running yet. Default 8000.
    ///   - httpHost: the address Serve's proxy binds to when Serve is not running yet. Default nil: 127.0.0.1
    ///     for a cluster reached through loopback (the embedded one: private to this machine), else 0.0.0.0.
    ///   - timeout: how long to wait for RUNNING. Default 10 minutes (a replica may download weights).
    ///   - progress: called with each status while waiting.
    /// - Returns: the application as Serve reports it once RUNNING.
    /// - Throws: ``ServeError`` (`deployFailed` with Ray's traceback, `rejected`, `timedOut`, `invalidModel`),
    ///   ``PackageError`` (a model file over the 100 MiB cap), ``ClusterError``.
    @discardableResult
    public func deploy(
        _ deployment: DetectionDeployment, code: ClusterCode? = nil, httpPort: Int = 8000, httpHost: String? = nil,
        timeout: Duration = .seconds(600), progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> ServeStatus.Application {
        try await deploy(
            deployment, identity: nil, code: code, httpPort: httpPort, httpHost: httpHost, timeout: timeout,
            progress: progress)
    }

    /// ``deploy(_:code:httpPort:httpHost:timeout:progress:)`` with the model's identity when the caller has it
    /// already (nil: computed here, hashing a local model file). The identity goes into the application's
    /// config, and the deploy waits until Serve runs the application with that identity.
    @discardableResult
    package func deploy(
        _ deployment: DetectionDeployment, identity: DetectionDeployment.ModelIdentity?, code: ClusterCode? = nil,
        httpPort: Int = 8000, httpHost: String? = nil, timeout: Duration = .seconds(600),
        progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> ServeStatus.Application {
        try deployment.validate()
        let application = DetectionServiceApplication(
            deployment: deployment, identity: try identity ?? deployment.modelIdentity())
        return try await ensure(
            application, code: code, httpPort: httpPort, httpHost: httpHost, redeploy: true, timeout: timeout,
            progress: progress)
    }

    /// Writes application `name` into Serve's config, every other application kept as deployed (Serve's PUT is
    /// declarative: an application left out would be removed). `config` builds the application from the
    /// arguments that stand for its key (see ``ServiceKey``): for ``ServiceAccess/key`` the key it already
    /// has when redeployed, else a new one (derived from this connection's token where the cluster requires one,
    /// else random).
    func writeApplication(
        _ name: String, access: ServiceAccess, httpPort: Int, httpHost: String?,
        config: ([String: JSONValue]) -> JSONValue
    ) async throws {
        let current = try await serveStatus()
        var applications = current.applications.values
            .filter { $0.name != name }
            .compactMap(\.deployedAppConfig)
        // A key is derived only on a cluster that requires the token: a client's token (from the environment,
        // for another cluster) must not make a key that clients of an open cluster cannot derive.
        let token = await authenticationMode() == .token ? configuration.token : nil
        let key: ServiceKey?
        switch access {
        case .key:
            // The key it has, unless a token now allows a derived one where it kept a key in clear.
            let kept = current.applications[name].flatMap { ServiceKey.deployed(in: $0, token: token) }
            key =
                kept.flatMap { token == nil || $0.salt != nil ? $0 : nil }
                ?? token.map { ServiceKey.derive(from: $0, salt: ServiceKey.newSalt()) } ?? .generate()
        case .givenKey(let given):
            guard token == nil else { throw Self.accessRefused(name, "a key of your own (--key-file)") }
            key = given
        case .open:
            guard token == nil else { throw Self.accessRefused(name, "no key (--public)") }
            key = nil
        }
        applications.append(config(key?.configArguments ?? [:]))
        try await writeServeConfig(
            applications, http: proxyOptions(current, port: httpPort, host: httpHost),
            what: "Deploying '\(name)' to Serve")
    }

    /// On a cluster that requires the token, every service's key is derived from it: Serve's proxy on the
    /// clusters RayLAN starts refuses any other key, and no key at all.
    private static func accessRefused(_ name: String, _ what: String) -> ServeError {
        ServeError(
            .accessRefused,
            "'\(name)' cannot be deployed with \(what) on a cluster with token authentication: there each service's "
                + "key is derived from the cluster's token, and Serve's proxy on the clusters RayLAN starts refuses "
                + "requests without such a key",
            remedy: "Leave --key-file and --public out: clients with the cluster's token derive the key themselves.")
    }

    /// The detection service's placement when none is asked for, fitted to this cluster's alive nodes
    /// (``DetectionDeployment/Placement/fitting(_:gpusPerReplica:)``: one replica per GPU, else CPU replicas
    /// holding a quarter of the CPUs; batches of 16 on GPUs, 8 on CPUs). Nodes that cannot be read give one
    /// replica with 1 CPU.
    /// - Parameter gpusPerReplica: as asked (0 places on CPUs even where a node has a GPU); nil: 1 where a node
    ///   has a GPU.
    public func defaultPlacement(gpusPerReplica: Double? = nil) async -> DetectionDeployment.Placement {
        DetectionDeployment.Placement.fitting((try? await nodes()) ?? [], gpusPerReplica: gpusPerReplica)
    }

    /// Polls until application `name` is RUNNING.
    /// - Throws: ``ServeError`` (`deployFailed` with Ray's message, `timedOut`).
    public func waitUntilRunning(
        _ name: String, timeout: Duration = .seconds(600), progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> ServeStatus.Application {
        try await waitUntilRunning(name, identity: nil, timeout: timeout, progress: progress)
    }

    /// Polls until application `name` is RUNNING, and with `identity`, runs that model (a redeploy over a
    /// RUNNING application may still show the old one's state for a moment).
    func waitUntilRunning(
        _ name: String, identity: DetectionDeployment.ModelIdentity?, timeout: Duration = .seconds(600),
        progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> ServeStatus.Application {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var last: ServeStatus.ApplicationStatus?
        // Right after a PUT, Serve may still report the old state for a moment.
        try await Task.sleep(for: .milliseconds(500))
        while true {
            if let app = try await serveStatus().applications[name] {
                if app.status != last {
                    progress("Application '\(name)': \(app.status)")
                    last = app.status
                }
                switch app.status {
                case .running where identity == nil || app.modelIdentity == identity: return app
                case .deployFailed where identity == nil || app.modelIdentity == identity:
                    throw Self.deployFailure(name, app)
                default: break
                }
            }
            if clock.now >= deadline {
                throw ServeError(
                    .timedOut, "The Serve application '\(name)' is not RUNNING after \(timeout)",
                    remedy: "See 'raylan serve status' for the replicas' state (GPUs free? weights downloading?).")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Starts Serve with no application and its HTTP proxy at `httpPort` on every node (host 0.0.0.0),
    /// so that later deploys, from any machine, keep that port.
    public func startServe(httpPort: Int, host: String = "0.0.0.0") async throws {
        try await writeServeConfig([], http: (host, httpPort), what: "Starting Serve")
    }

    /// Removes one application, keeping the others (Serve itself keeps running), and
    /// waits until Serve no longer lists it. Returns false when there was no such application.
    @discardableResult
    public func deleteServeApplication(_ name: String) async throws -> Bool {
        let current = try await serveStatus()
        guard current.applications[name] != nil else { return false }
        let others = current.applications.values.filter { $0.name != name }.compactMap(\.deployedAppConfig)
        // The last one goes too by a PUT with no applications: Serve keeps running with its HTTP options,
        // so that the port `raylan up` chose survives.
        try await writeServeConfig(
            others, http: current.httpOptions?.port.map { (current.httpOptions?.host ?? "0.0.0.0", $0) },
            what: "Deleting the Serve application '\(name)'")
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(120))
        while try await serveStatus().applications[name] != nil && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
        }
        return true
    }

    /// The error for application `name`, which Serve reports DEPLOY_FAILED: Ray's reason and, for a fault
    /// RayLAN knows (``RaySays/knownFault(in:)``, such as Ray 2.45 with protobuf 7), that fault's cause and remedy;
    /// for any other, the usual suspects.
    static func deployFailure(_ name: String, _ app: ServeStatus.Application) -> ServeError {
        ServeError(
            .deployFailed, "The Serve application '\(name)' failed to deploy: \(failureSummary(app))",
            remedy: knownFault(app)?.description
                ?? "Fix the cause above (model name or path, GPUs per replica) and deploy again; "
                + "'raylan serve status' shows Ray's whole traceback.")
    }

    /// The fault RayLAN knows in a failed application's messages (its own, and each deployment's), if any.
    package static func knownFault(_ app: ServeStatus.Application) -> ClusterFault? {
        let messages = [app.message] + (app.deployments ?? [:]).values.sorted { $0.name < $1.name }.map(\.message)
        return RaySays.knownFault(in: messages.compactMap { $0 }.joined(separator: "\n"))
    }

    /// Ray's reason for a failed application: its own message ("Failed to update the deployments …") and, from
    /// each deployment's message (which holds the replica's traceback), the first line and the exception.
    package static func failureSummary(_ app: ServeStatus.Application) -> String {
        // Ray's traceback ends in a newline: trimmed, the remedy that follows stays on the exception's line.
        var parts = [app.message.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "no message from Ray"]
        for deployment in (app.deployments ?? [:]).values.sorted(by: { $0.name < $1.name }) {
            let lines = (deployment.message ?? "").split(separator: "\n").map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            .filter { !$0.isEmpty }
            guard let first = lines.first else { continue }
            let exception = lines.last { !$0.hasPrefix("File ") && !$0.hasPrefix("^") && $0 != first }
            parts.append("\(deployment.name): \(first)" + (exception.map { " … \($0)" } ?? ""))
        }
        return parts.joined(separator: " ")
    }

    /// The proxy's host and port to write: Serve's own while it runs (Ray ignores new ones then), else
    /// `port` and `host` (nil: loopback for a cluster reached through loopback, else every address).
    private func proxyOptions(_ current: ServeStatus, port: Int, host: String?) -> (host: String, port: Int) {
        if let running = current.httpOptions?.port, current.isRunning || !(current.proxies ?? [:]).isEmpty {
            return (current.httpOptions?.host ?? "0.0.0.0", running)
        }
        return (host ?? (address.isLoopback ? "127.0.0.1" : "0.0.0.0"), port)
    }

    /// How many times a config is PUT while Serve's start is interrupted (``RaySays/serveStartInterrupted(_:)``),
    /// and how long apart.
    static let serveStartTries = 4
    static let serveStartRetryDelay: Duration = .seconds(2)

    /// PUTs Serve's whole declarative config: `applications`, a proxy on every node, and the proxy's host and
    /// port (nil: Serve's own defaults). The one place the config body is written.
    ///
    /// The PUT that starts Serve can fail on a slow host (the first deploy on a new cluster while the machine is
    /// busy): a proxy that is not ready after Serve's health checks is replaced, and the PUT that waited for it
    /// answers 500. Serve goes on starting, so the same config is PUT again (it is declarative), up to
    /// ``serveStartTries`` times in all.
    /// - Throws: ``ServeError`` (`rejected`) when Ray refuses the config, ``ClusterError``.
    func writeServeConfig(
        _ applications: [JSONValue], http: (host: String, port: Int)?, what: String
    ) async throws {
        var body: [String: JSONValue] = [
            "proxy_location": .string("EveryNode"),
            "applications": .array(applications),
        ]
        if let http {
            body["http_options"] = .object(["host": .string(http.host), "port": .number(Double(http.port))])
        }
        let data = try JSONEncoder().encode(JSONValue.object(body))
        let (response, tries) = try await resend(
            every: Self.serveStartRetryDelay, tries: Self.serveStartTries,
            while: { $0.status == 500 && RaySays.serveStartInterrupted($0.text) }
        ) { try await send(.PUT, "/api/serve/applications/", body: data) }
        switch response.status {
        case 200: return
        case 400:
            throw ServeError(.rejected, "Ray refused the Serve config: \(RayMessage.extract(from: response.text))")
        default:
            let tried = tries > 1 ? " (tried \(tries) times while Serve was starting)" : ""
            throw ClusterError.server(what + tried, status: response.status, body: response.text)
        }
    }
}
