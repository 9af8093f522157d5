import Foundation
import NIOHTTP1
import RayLANCore

/// A private Ray that RayLAN started on this machine (`ray start --head --block` in its own process group,
/// free or pinned ports, a short private temp dir), or a node that joined another cluster. Stopped by ``stop()``, which ends exactly its processes.
///
/// A record of it (decoded from `local-cluster.json` or `node.json`) is trusted only while its pid is still
/// that `ray start`: same start time and boot (``leader``), run by this user, with the exact argument
/// `--temp-dir=<temporaryDirectory>`, and the temp dir is one RayLAN made and this user owns. Otherwise
/// the record is stale (``staleness()``) and nothing is signalled or deleted for it.
///
/// ```swift
/// try await LocalRay.withLocalCluster(LocalRayConfiguration(environment: try .locate())) { ray in
///     try await RayCluster.withConnection(to: ray.address) { cluster in … }
/// }
/// ```
public struct LocalRay: Sendable, Codable, Hashable {
    /// The ports the cluster was given.
    public struct Ports: Sendable, Codable, Hashable {
        public var gcs: Int
        public var dashboard: Int
        public var rayClient: Int
        public var dashboardAgentListen: Int
        public var dashboardAgentGRPC: Int
        public var metrics: Int
        public var nodeManager: Int
        public var objectManager: Int
        public var runtimeEnvAgent: Int
        /// Reserved for Ray Serve's HTTP proxy (used when a service is deployed).
        public var serve: Int
        /// The ports Ray's worker processes listen on. Nil: Ray's default range (10002–19999).
        public var workers: ClosedRange<Int>?
        /// The autoscaler's and the dashboard's Prometheus metrics (head only). Nil: Ray's defaults,
        /// 44217 and 44227.
        public var autoscalerMetrics: Int?
        public var dashboardMetrics: Int?

        public init(
            gcs: Int, dashboard: Int, rayClient: Int, dashboardAgentListen: Int, dashboardAgentGRPC: Int, metrics: Int,
            nodeManager: Int, objectManager: Int, runtimeEnvAgent: Int, serve: Int, workers: ClosedRange<Int>? = nil,
            autoscalerMetrics: Int? = nil, dashboardMetrics: Int? = nil
        ) {
            self.gcs = gcs
            self.dashboard = dashboard
            self.rayClient = rayClient
            self.dashboardAgentListen = dashboardAgentListen
            self.dashboardAgentGRPC = dashboardAgentGRPC
            self.metrics = metrics
            self.nodeManager = nodeManager
            self.objectManager = objectManager
            self.runtimeEnvAgent = runtimeEnvAgent
            self.serve = serve
            self.workers = workers
            self.autoscalerMetrics = autoscalerMetrics
            self.dashboardMetrics = dashboardMetrics
        }
    }

    /// The `ray start` process; also its process group id.
    public var pid: Int32
    /// When that process started, and in which boot, as recorded at start; nil in records written by older
    /// RayLAN versions, which are never trusted.
    public var leader: ProcessIdentity?
    /// The private `--temp-dir`.
    public var temporaryDirectory: String
    public var ports: Ports
    /// Host the dashboard listens on.
    public var dashboardHost: String
    /// Ray's own output (`ray start` stdout and stderr).
    public var logFile: String
    /// Where the cluster's token came from (never the token itself); nil: no authentication. Read the
    /// token again with ``AuthToken/load(from:environment:)``.
    public var tokenSource: AuthToken.Source?
    /// For a node that joined another cluster: the head's GCS (`HOST:PORT`). Nil for a head.
    public var joinedAddress: String?
    /// The node's own address (`--node-ip-address`), where one was given.
    public var nodeAddress: String?
    /// For a node that joined a head behind a TLS front: the head's certificate pin. Nil: plain HTTP.
    public var dashboardPin: CertificatePin?

    /// The dashboard address to connect to.
    public var address: ClusterAddress { ClusterAddress(host: dashboardHost, port: ports.dashboard, pin: dashboardPin) }

    /// Whether the cluster wants a token.
    public var usesToken: Bool { tokenSource != nil }

    /// The token this cluster was started with, read again from where it came from; nil without one.
    /// - Throws: ``ClusterError`` (`tokenUnreadable`) when its file is gone or empty.
    public func token() throws -> AuthToken? {
        guard let tokenSource else { return nil }
        return try AuthToken.load(from: tokenSource)
    }

    /// Starts a cluster and waits until its dashboard and job agent answer.
    ///
    /// - Throws: ``LocalRayError``: `exitedDuringStart` (after three tries) or `startTimedOut` with the end
    ///   of Ray's output, `spawnFailed`, `noFreePort`; nothing is left running.
    public static func start(_ configuration: LocalRayConfiguration) async throws -> LocalRay {
        // On a busy machine Ray can miss its own start-up deadlines (the node's 30 s registration; Ray
        // 2.45's dashboard must answer within 20 s) and 'ray start' exits; another try usually succeeds.
        var attempt = 1
        while true {
            do {
                return try await startOnce(configuration)
            } catch let error as LocalRayError where error.code == .exitedDuringStart && attempt < 3 {
                attempt += 1
            }
        }
    }

    static func startOnce(_ configuration: LocalRayConfiguration) async throws -> LocalRay {
        // Absolute and plain (no `.`, `..` or `//`): a record's temp dir is only trusted in that form.
        let parent = URL(fileURLWithPath: configuration.temporaryParent).standardizedFileURL.path
        let temporary = (parent == "/" ? "" : parent) + "/rl-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        let logFile = temporary + "/ray-start.log"
        let ports: Ports
        if let pinned = configuration.ports {
            ports = pinned
        } else {
            // The metrics ports too: two clusters on one machine would both want Ray's fixed 44217 and 44227.
            let free = try FreePort.pick(12)
            ports = Ports(
                gcs: free[0], dashboard: free[1], rayClient: free[2], dashboardAgentListen: free[3],
                dashboardAgentGRPC: free[4], metrics: free[5], nodeManager: free[6], objectManager: free[7],
                runtimeEnvAgent: free[8], serve: free[9], autoscalerMetrics: free[10], dashboardMetrics: free[11])
        }
        var arguments = [configuration.environment.rayExecutable, "start", "--block", "--temp-dir=\(temporary)"]
        if let head = configuration.joinAddress {
            arguments.append("--address=\(head)")
        } else {
            arguments += [
                "--head",
                "--port=\(ports.gcs)",
                "--include-dashboard=true",
                "--dashboard-host=\(configuration.dashboardHost)",
                "--dashboard-port=\(ports.dashboard)",
                "--ray-client-server-port=\(ports.rayClient)",
            ]
        }
        let nodeAddress = configuration.isPrivate ? "127.0.0.1" : configuration.nodeAddress
        if let nodeAddress { arguments.append("--node-ip-address=\(nodeAddress)") }
        if let workers = ports.workers {
            arguments += ["--min-worker-port=\(workers.lowerBound)", "--max-worker-port=\(workers.upperBound)"]
        }
        arguments += [
            "--dashboard-agent-listen-port=\(ports.dashboardAgentListen)",
            "--dashboard-agent-grpc-port=\(ports.dashboardAgentGRPC)",
            "--metrics-export-port=\(ports.metrics)",
            "--node-manager-port=\(ports.nodeManager)",
            "--object-manager-port=\(ports.objectManager)",
            "--runtime-env-agent-port=\(ports.runtimeEnvAgent)",
            "--disable-usage-stats",
        ]
        if let cpus = configuration.cpus { arguments.append("--num-cpus=\(cpus)") }
        if let gpus = configuration.gpus { arguments.append("--num-gpus=\(Formatting.number(gpus))") }
        if let bytes = configuration.objectStoreBytes { arguments.append("--object-store-memory=\(bytes)") }
        if !configuration.resources.isEmpty,
            let json = try? JSONSerialization.data(withJSONObject: configuration.resources, options: [.sortedKeys])
        {
            arguments.append("--resources=\(String(decoding: json, as: UTF8.self))")
        }
        var environment = ProcessInfo.processInfo.environment
        // Jobs' entrypoints run through /bin/sh with Ray's PATH: put the environment's bin first so that
        // `python` in an entrypoint is the cluster's Python, with Ray.
        let bin = (configuration.environment.rayExecutable as NSString).deletingLastPathComponent
        environment["PATH"] = bin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["RAY_USAGE_STATS_ENABLED"] = "0"
        environment["PYTHONUNBUFFERED"] = "1"
        if let port = ports.autoscalerMetrics { environment["AUTOSCALER_METRIC_PORT"] = String(port) }
        if let port = ports.dashboardMetrics { environment["DASHBOARD_METRIC_PORT"] = String(port) }
        if let token = configuration.authToken {
            environment["RAY_AUTH_MODE"] = "token"
            environment["RAY_AUTH_TOKEN"] = token.value
        } else {
            environment["RAY_AUTH_MODE"] = "disabled"
            environment["RAY_AUTH_TOKEN"] = nil
        }
        // Ray's single-machine mode: the node's address is loopback for every process of the cluster, so
        // nothing binds beyond it (see LocalRayConfiguration.isPrivate); a cluster for the LAN says so.
        environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = configuration.isPrivate ? "0" : "1"
        if let guardFile = configuration.serveGuard {
            let folder = temporary + "/python"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: guardFile, toPath: folder + "/raylan_serve_guard.py")
            environment["PYTHONPATH"] = ([folder] + [environment["PYTHONPATH"]].compactMap { $0 }).joined(
                separator: ":")
            environment["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "raylan_serve_guard:middlewares"
            // Serve settings under which replicas (or an HAProxy) take HTTP themselves, not behind the guard.
            for bypass in [
                "RAY_SERVE_ENABLE_DIRECT_INGRESS", "RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED",
            ] {
                environment[bypass] = nil
            }
        }
        for (key, value) in configuration.extraEnvironment { environment[key] = value }

        let pid = try ProcessGroup.spawn(arguments, environment: environment, logFile: logFile)
        let ray = LocalRay(
            pid: pid, leader: ProcessIdentity.of(pid), temporaryDirectory: temporary, ports: ports,
            dashboardHost: configuration.dashboardHost, logFile: logFile, tokenSource: configuration.authToken?.source,
            joinedAddress: configuration.joinAddress, nodeAddress: nodeAddress, dashboardPin: configuration.dashboardPin
        )
        do {
            try await ray.waitUntilReady(token: configuration.authToken, timeout: configuration.startTimeout)
            return ray
        } catch {
            // Keep Ray's output for the user: the temp dir goes with the cluster.
            try? FileManager.default.moveItem(atPath: logFile, toPath: ray.keptLogFile)
            await ray.stop(leaderMayHaveExited: true)
            throw error
        }
    }

    /// Starts a cluster, runs `body`, and stops the cluster, also when `body` throws.
    public static func withLocalCluster<Result: Sendable>(
        _ configuration: LocalRayConfiguration, _ body: (LocalRay) async throws -> Result
    ) async throws -> Result {
        let ray = try await start(configuration)
        do {
            let result = try await body(ray)
            await ray.stop(leaderMayHaveExited: true)
            return result
        } catch {
            await ray.stop(leaderMayHaveExited: true)
            throw error
        }
    }

    /// Ends every process of this cluster (TERM, up to 10 s, then KILL) and removes its temp dir, once the
    /// record is proven to be RayLAN's running Ray (see the type's discussion). Other processes, and other
    /// Ray clusters on the machine, are not touched.
    ///
    /// - Returns: nil when the cluster was stopped; otherwise why the record is stale, and then no process
    ///   was signalled and nothing was deleted.
    @discardableResult
    public func stop() async -> StaleRecord? {
        await stop(leaderMayHaveExited: false)
    }

    /// ``stop()``; with `leaderMayHaveExited`, for a cluster this process started: when `ray start` has
    /// already exited (and was reaped), its leftovers are ended all the same.
    @discardableResult
    func stop(leaderMayHaveExited: Bool) async -> StaleRecord? {
        switch ProcessGroup.verify(
            leader: pid, identity: leader, temporaryDirectory: temporaryDirectory,
            leaderMayHaveExited: leaderMayHaveExited)
        {
        case .stale(let reason):
            return StaleRecord(pid: pid, reason: reason)
        case .owned(let cluster):
            await ProcessGroup.terminate(cluster)
            try? FileManager.default.removeItem(atPath: cluster.temporaryDirectory)
            return nil
        }
    }

    /// Why this record no longer describes a running Ray that RayLAN started (see the type's discussion);
    /// nil while it does.
    public func staleness() -> StaleRecord? {
        guard case .stale(let reason) = verdict() else { return nil }
        return StaleRecord(pid: pid, reason: reason)
    }

    /// Whether this record is proven to be RayLAN's Ray and its `ray start` runs (``staleness()`` is nil).
    public var isRunning: Bool { staleness() == nil }

    /// The process ids of this cluster's processes now; empty when the record is stale.
    public var processIDs: [Int32] {
        guard case .owned(let cluster) = verdict() else { return [] }
        return cluster.members(in: ProcessGroup.processTable()).map(\.pid)
    }

    func verdict() -> ProcessGroup.Verdict {
        ProcessGroup.verify(leader: pid, identity: leader, temporaryDirectory: temporaryDirectory)
    }

    /// Polls until the dashboard answers and the head's job agent is registered.
    func waitUntilReady(token: AuthToken?, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let configuration = RayCluster.Configuration(
            token: token, timeouts: .init(connect: .seconds(1), request: .seconds(5)))
        try await RayCluster.withConnection(to: address, configuration: configuration) { cluster in
            while true {
                if ProcessGroup.hasExited(pid) {
                    throw startFailure(.exitedDuringStart, "'ray start' exited")
                }
                if await cluster.isReady(node: joinedAddress == nil ? nil : nodeAddress) { return }
                if clock.now >= deadline {
                    throw startFailure(.startTimedOut, "it did not answer within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }

    func startFailure(_ code: LocalRayError.Code, _ reason: String) -> LocalRayError {
        let output = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        let lines = output.split(separator: "\n")
        let telling = lines.filter { line in
            ["Error", "error:", "Exception", "timed out", "Traceback"].contains { line.contains($0) }
        }
        let tail = (telling.suffix(6) + lines.suffix(3)).map { String($0.prefix(400)) }.joined(separator: "\n")
        return LocalRayError(
            code, "The local Ray did not start: \(reason). Ray said:\n\(tail)",
            remedy:
                "Ray's whole output is in \(keptLogFile); the Python environment comes from \(RayEnvironment.setupCommand)."
        )
    }

    /// Where Ray's output is kept after a failed start.
    var keptLogFile: String { temporaryDirectory + "-ray-start.log" }

}

extension RayCluster {
    /// The dashboard answers and a job could be accepted: the head node is alive with its agent; with
    /// `node`, also the node with that address.
    func isReady(node: String? = nil) async -> Bool {
        guard let response = try? await send(.GET, "/api/version"), response.status == 200 else { return false }
        // The job agent registers a little after the dashboard; /api/jobs/ answers once the head is known.
        guard let jobs = try? await send(.GET, "/api/jobs/"), jobs.status == 200 else { return false }
        guard let nodes = try? await send(.GET, "/nodes?view=summary"), nodes.status == 200 else { return false }
        guard let node else {
            struct Summary: Decodable {
                struct Data: Decodable {
                    struct Node: Decodable {
                        struct Raylet: Decodable { var state: NodeInfo.State? }
                        var raylet: Raylet?
                    }
                    var summary: [Node]
                }
                var data: Data
            }
            let summary = try? JSONDecoder().decode(Summary.self, from: nodes.body)
            return summary?.data.summary.contains { $0.raylet?.state == .alive } ?? false
        }
        guard let listed = try? await self.nodes() else { return false }
        return listed.contains { $0.ip == node && $0.isAlive }
    }
}
