import Foundation
import NIOSSL
import RayLANCore

/// The Ray node that `raylan up` started on this host, a head or a node that joined one, recorded in
/// `$RAYLAN_HOME/node.json` so that `raylan down` stops exactly it.
///
/// ```swift
/// let node = try await HostNode.up(HostNodeConfiguration(role: .head, environment: try .locateForNode()))
/// print(node.dashboardURL, node.joinCommand)
/// ```
public struct HostNode: Sendable, Codable {
    public enum Role: String, Sendable, Codable {
        case head, worker
    }

    public var role: Role
    /// The Ray processes (`ray start --block` in its own process group) and their ports.
    public var ray: LocalRay
    /// This node's address on the LAN.
    public var nodeAddress: String
    /// The head's address (this node's own for a head).
    public var headAddress: String
    /// The network the node is on, e.g. `192.168.1.0/24` (for firewall rules).
    public var subnet: String
    public var gpus: GPUSelection.Plan
    /// Where the cluster token came from (the head's token file, or what a joining node was given);
    /// nil without token authentication. Never the token itself.
    public var tokenSource: AuthToken.Source?
    public var versions: RayEnvironment.Versions
    /// The `ray` executable the node runs.
    public var rayExecutable: String
    /// What the user should know (no authentication, logical GPUs, Serve not started).
    public var warnings: [String]
    public var startedAt: Date
    /// The head's certificate fingerprint, which clients pin (a head's own; the head's for a joined node). Nil
    /// in records of an older RayLAN, whose heads served plain HTTP.
    public var fingerprint: CertificatePin?
    /// A head: the TLS front's process (`raylan tls-front`), which serves the dashboard and Serve on the LAN.
    public var frontPID: Int32?

    public var ports: LocalRay.Ports { ray.ports }
    /// The cluster token file, when the token is kept in one.
    public var tokenFile: String? { tokenSource?.path }
    /// The dashboard, which RayLAN connects to: over TLS, behind the head's front.
    public var dashboardURL: String { "\(fingerprint == nil ? "http" : "https")://\(headAddress):\(ports.dashboard)" }
    /// `--fingerprint sha256:…`, for the printed commands.
    var fingerprintArguments: String { fingerprint.map { " --fingerprint \($0)" } ?? "" }

    /// The command that adds another host to this cluster.
    public var joinCommand: String {
        var words = ["raylan", "up", "--join", headAddress]
        if ports.gcs != LocalRay.Ports.defaultGCS { words += ["--port", String(ports.gcs)] }
        if ports.dashboard != LocalRay.Ports.defaultDashboard {
            words += ["--dashboard-port", String(ports.dashboard)]
        }
        if ports.serve != LocalRay.Ports.defaultServe { words += ["--serve-port", String(ports.serve)] }
        if let fingerprint { words += ["--fingerprint", fingerprint.description] }
        if let tokenFile { words += ["--token-file", tokenFile] }
        return words.joined(separator: " ")
    }

    /// The commands to use the cluster from another machine (the Mac).
    public var clientCommands: [String] {
        let token = fingerprintArguments + (tokenFile.map { " --token-file \($0)" } ?? "")
        return [
            "raylan status --address \(headAddress)\(token)",
            "raylan doctor --address \(headAddress)\(token)",
            "raylan detect photos/ --address \(headAddress)\(token)",
        ]
    }

    /// Firewall commands (ufw) that open the node's ports to its subnet.
    public var ufwRules: [String] { ports.ufwRules(from: subnet) }
    /// Firewall commands (firewalld) that open the node's ports to its subnet.
    public var firewalldRules: [String] { ports.firewalldRules(from: subnet) }

    static func stateFile(in directory: String) -> String { directory + "/node.json" }

    /// The node recorded in `stateDirectory`, whether or not it still runs.
    public static func recorded(in stateDirectory: String = RayLANHome.path()) -> HostNode? {
        guard let data = FileManager.default.contents(atPath: stateFile(in: stateDirectory)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(HostNode.self, from: data)
    }

    /// Starts a head, or joins a head, with the pinned ports, and records the node.
    ///
    /// - Parameter progress: one line per step, for the user.
    /// - Throws: ``HostNodeError``: `alreadyRunning` when RayLAN's node here still runs, `portInUse`,
    ///   `versionMismatch` naming both versions, `invalidArgument` for a bad address or GPU selection,
    ///   `authenticationUnavailable` for a head on Ray older than 2.52 without `insecure`;
    ///   ``ClusterError``: `unreachable` or `unauthorized` for the head, `tokenUnwritable` for the head's
    ///   token file; ``LocalRayError``: `pythonMissing`, `exitedDuringStart` or `startTimedOut` with Ray's
    ///   output. Nothing is left running.
    public static func up(
        _ configuration: HostNodeConfiguration, progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> HostNode {
        let directory = configuration.stateDirectory
        try RayLANHome.makePrivateFolder(directory)
        let lock = try FileLock(path: directory + "/node.lock")
        defer { lock.unlock() }
        if let running = recorded(in: directory) {
            guard var stale = running.ray.staleness() else {
                throw HostNodeError(
                    .alreadyRunning,
                    "RayLAN already runs a Ray \(running.role.rawValue) on this host (\(running.nodeAddress), "
                        + "dashboard \(running.dashboardURL))",
                    remedy: "Stop it first with 'raylan down'.")
            }
            try? FileManager.default.removeItem(atPath: stateFile(in: directory))
            stale.file = stateFile(in: directory)
            progress(stale.description)
        }
        // A --bind that cannot serve is refused before anything is run or printed.
        if let bind = configuration.bind { try check(bind: bind) }
        let versions = try await configuration.environment.versions()
        progress("Ray \(versions.ray), Python \(versions.python) from \(configuration.environment.rayExecutable)")
        let node: HostNode
        switch configuration.role {
        case .head:
            node = try await startHead(configuration, versions: versions, progress: progress)
        case .join(let head):
            node = try await join(head: head, configuration, versions: versions, progress: progress)
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        _ = FileManager.default.createFile(atPath: stateFile(in: directory), contents: try encoder.encode(node))
        return node
    }

    /// Stops the recorded node, when it is proven to be RayLAN's running Ray (the same proof as the
    /// embedded cluster's, see ``LocalRay``; its process groups only, never other Ray processes), and
    /// forgets it.
    ///
    /// - Returns: the recorded node and, when its record was stale (then nothing was signalled or
    ///   deleted), why; nil when none was recorded.
    @discardableResult
    public static func down(
        in stateDirectory: String = RayLANHome.path()
    ) async throws -> (node: HostNode, stale: StaleRecord?)? {
        guard FileManager.default.fileExists(atPath: stateFile(in: stateDirectory)) else { return nil }
        let lock = try FileLock(path: stateDirectory + "/node.lock")
        defer { lock.unlock() }
        guard let node = recorded(in: stateDirectory) else { return nil }
        var stale = await node.ray.stop()
        try? FileManager.default.removeItem(atPath: stateFile(in: stateDirectory))
        stale?.file = stateFile(in: stateDirectory)
        return (node, stale)
    }

    // MARK: Head

    static func startHead(
        _ configuration: HostNodeConfiguration, versions: RayEnvironment.Versions, progress: @Sendable (String) -> Void
    ) async throws -> HostNode {
        let authentication = try headAuthentication(
            rayVersion: versions.ray, tokenGiven: configuration.tokenFile != nil, insecure: configuration.insecure)
        let address = try nodeAddress(bind: configuration.bind, toward: nil)
        let interface = HostNetwork.interface(with: address)
        let ports = LocalRay.Ports.pinned(
            gcs: configuration.gcsPort, dashboard: configuration.dashboardPort, serve: configuration.servePort)
        // Ray's dashboard and Serve's proxy listen on loopback; the TLS front takes their ports on the LAN
        // addresses (--bind's alone, else every one of this host's), so plain HTTP is not reachable from the LAN.
        let lanAddresses = configuration.bind.map { [$0] } ?? HostNetwork.lanAddresses()
        try checkFree(
            [ports.gcs, ports.rayClient] + nodePorts(ports), on: configuration.bind ?? "0.0.0.0")
        for host in ["127.0.0.1"] + lanAddresses { try checkFree([ports.dashboard, ports.serve], on: host) }
        let identity = try HeadIdentity.loadOrCreate(
            in: configuration.stateDirectory + "/tls", addresses: lanAddresses)
        progress("TLS certificate \(identity.certificateFile), fingerprint \(identity.pin)")
        let (plan, environment) = try await gpuSetup(configuration, progress: progress)
        var warnings = plan.logicalOnly ? [plan.summary] : []

        var token: AuthToken?
        switch authentication {
        case .none:
            warnings.append(
                "No authentication (--insecure): anyone who reaches port \(ports.dashboard) can run code on this cluster."
            )
        case .token:
            let path = configuration.tokenFile ?? configuration.stateDirectory + "/cluster-token"
            token = try AuthToken.loadOrCreate(at: path, via: configuration.tokenFile == nil ? nil : "--token-file")
        }
        let local = LocalRayConfiguration(
            environment: configuration.environment, cpus: configuration.cpus, gpus: Double(plan.count),
            authToken: token,
            extraEnvironment: environment, dashboardHost: "127.0.0.1", startTimeout: configuration.startTimeout,
            ports: ports, nodeAddress: address, serveGuard: configuration.serveGuard)
        progress("Starting the Ray head on \(address) (dashboard port \(ports.dashboard), GCS \(ports.gcs))…")
        let ray = try await LocalRay.start(local)
        let frontPID: Int32
        do {
            frontPID = try await startFront(
                for: ray, identity: identity, addresses: lanAddresses, ports: [ports.dashboard, ports.serve],
                executable: configuration.frontExecutable)
        } catch {
            await ray.stop(leaderMayHaveExited: true)
            throw error
        }
        progress(
            "TLS front on \(lanAddresses.joined(separator: ", ")) (ports \(ports.dashboard), \(ports.serve)); "
                + "plain HTTP on 127.0.0.1 only.")
        // Start Serve now, so that its proxy listens on the pinned port on every node and later deploys
        // (from any machine) keep that port.
        do {
            try await RayCluster.withConnection(to: ray.address, configuration: .init(token: token)) { cluster in
                // Loopback on every node: the head's front is the only way in from the LAN.
                try await cluster.startServe(httpPort: ports.serve, host: "127.0.0.1")
            }
            progress("Serve's HTTP proxy listens on port \(ports.serve).")
        } catch {
            warnings.append("Serve did not start (\(error)); the first 'raylan serve deploy' starts it.")
        }
        return HostNode(
            role: .head, ray: ray, nodeAddress: address, headAddress: address,
            subnet: interface?.subnet ?? address + "/32", gpus: plan, tokenSource: token?.source, versions: versions,
            rayExecutable: configuration.environment.rayExecutable, warnings: warnings, startedAt: Date(),
            fingerprint: identity.pin, frontPID: frontPID)
    }

    /// Starts the TLS front (`raylan tls-front`) for `ray`'s head: each of `ports` on each of `addresses`, relayed
    /// to the same port on 127.0.0.1. It runs in its own process group with the node's `--temp-dir=`, so that
    /// stopping the node (``LocalRay/stop()``) ends it too, by the same proof. Returns once it completes a TLS
    /// handshake with the identity's certificate on every listener.
    /// - Throws: ``TLSError`` `frontFailed` with its output; nothing of the front is left running.
    static func startFront(
        for ray: LocalRay, identity: HeadIdentity, addresses: [String], ports: [Int], executable: String
    ) async throws -> Int32 {
        let log = ray.temporaryDirectory + "/tls-front.log"
        var arguments = [
            executable, "tls-front", "--temp-dir=\(ray.temporaryDirectory)", "--certificate", identity.certificateFile,
            "--key", identity.keyFile,
        ]
        for address in addresses {
            for port in ports {
                arguments += ["--route", TLSFront.Route(listenHost: address, port: port, upstreamPort: port).argument]
            }
        }
        let pid = try ProcessGroup.spawn(arguments, environment: ProcessInfo.processInfo.environment, logFile: log)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(20))
        var waiting = addresses.flatMap { address in ports.map { (address, $0) } }
        while let (address, port) = waiting.first {
            if ProcessGroup.hasExited(pid) { break }
            let pin = identity.pin
            let answered = try? await TLSProbe.handshake(
                host: address, port: port, timeout: .seconds(2), decide: { CertificatePin(of: $0) == pin })
            if answered != nil {
                waiting.removeFirst()
                continue
            }
            if clock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard waiting.isEmpty else {
            // Its group holds it alone; the node's stop would end it too.
            _ = kill(-pid, SIGKILL)
            _ = ProcessGroup.hasExited(pid)
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TLSError(
                .frontFailed,
                "The TLS front did not answer on \(waiting.map { "\($0.0):\($0.1)" }.joined(separator: ", ")): "
                    + output.split(separator: "\n").suffix(3).joined(separator: " / "),
                remedy: "Check that \(executable) is RayLAN's raylan and that those ports are free, then try again.")
        }
        return pid
    }

    /// How a head protects its dashboard, which runs any code it is sent.
    enum HeadAuthentication: Sendable, Hashable {
        /// Token authentication (Ray 2.52 and later).
        case token
        /// None, as the user asked with `--insecure`: anyone who reaches the dashboard runs code on the host.
        case none
    }

    /// The head's authentication: a token where Ray has token authentication, none only with `insecure`.
    ///
    /// A head never starts open unless asked: Ray older than 2.52 (or a version that does not parse) has no
    /// token authentication, so it needs `insecure` as much as a newer Ray does to run without a token.
    /// - Parameters:
    ///   - rayVersion: the environment's Ray version, as ``RayEnvironment/versions()`` reads it.
    ///   - tokenGiven: a token file was named (`--token-file`).
    ///   - insecure: the user accepts a head without authentication (`--insecure`).
    /// - Throws: ``HostNodeError`` `authenticationUnavailable` (Ray without token authentication and no
    ///   `insecure`) or `invalidArgument` (`insecure` with a token file), both usage errors.
    static func headAuthentication(rayVersion: String, tokenGiven: Bool, insecure: Bool) throws -> HeadAuthentication {
        if insecure && tokenGiven {
            throw HostNodeError(
                .invalidArgument, "--insecure turns token authentication off, and --token-file names a token",
                remedy: "Leave out --token-file, or --insecure.")
        }
        if insecure { return .none }
        if let version = RayVersion(rayVersion), version.supportsTokenAuthentication { return .token }
        throw HostNodeError(
            .authenticationUnavailable,
            "This Ray (\(rayVersion)) has no token authentication: anyone on the LAN could run code on this host",
            remedy:
                "Pass --insecure\(tokenGiven ? " (without --token-file)" : "") to accept that, or install ray>=2.52.")
    }

    // MARK: Join

    static func join(
        head: String, _ configuration: HostNodeConfiguration, versions: RayEnvironment.Versions,
        progress: @Sendable (String) -> Void
    ) async throws -> HostNode {
        guard let headAddress = HostNetwork.resolve(head) else {
            throw HostNodeError(
                .invalidArgument, "Cannot resolve the head '\(head)'",
                remedy: "Pass the head's IPv4 address, as 'raylan up --head' printed it.")
        }
        // Over TLS, pinned: the head's versions and authentication mode come from the head itself.
        let dashboard = ClusterAddress(
            scheme: "https", host: headAddress, port: configuration.dashboardPort, pin: configuration.fingerprint)
        let token = configuration.token
        let (info, mode, pin) = try await RayCluster.withConnection(
            to: dashboard, configuration: .init(token: token, trust: configuration.trust)
        ) { cluster in
            (try await cluster.serverInfo(), await cluster.authenticationMode(), await cluster.pin(for: dashboard))
        }
        let headPython = info.pythonVersion ?? "?"
        if info.rayVersion.description != versions.ray || (info.pythonVersion != nil && headPython != versions.python) {
            throw HostNodeError(
                .versionMismatch,
                "The head at \(headAddress) runs Ray \(info.rayVersion) on Python \(headPython), but this host's environment (\(configuration.environment.python)) has Ray \(versions.ray) on Python \(versions.python); Ray refuses nodes whose versions differ",
                remedy:
                    "Install Python \(headPython) with ray[default,serve]==\(info.rayVersion) here (e.g. with uv), and point RAYLAN_PYTHON or --python at it."
            )
        }
        progress("The head at \(headAddress) runs Ray \(info.rayVersion) on Python \(headPython), as this host does.")
        let address = try nodeAddress(bind: configuration.bind, toward: headAddress)
        let interface = HostNetwork.interface(with: address)
        var ports = LocalRay.Ports.pinned(
            gcs: configuration.gcsPort, dashboard: configuration.dashboardPort, serve: configuration.servePort)
        ports.autoscalerMetrics = nil
        ports.dashboardMetrics = nil
        try checkFree(nodePorts(ports), on: address)
        // Serve's proxy here listens on loopback (the head started Serve so).
        try checkFree([ports.serve], on: "127.0.0.1")
        let (plan, environment) = try await gpuSetup(configuration, progress: progress)
        let warnings = plan.logicalOnly ? [plan.summary] : []
        let usesToken = mode == .token
        if usesToken && token == nil {
            throw ClusterError(
                .unauthorized, "The head at \(headAddress) uses token authentication, and no token was found here",
                remedy:
                    "Copy the head's token file (raylan up --head printed its path) to this host and pass --token-file."
            )
        }
        let local = LocalRayConfiguration(
            environment: configuration.environment, cpus: configuration.cpus, gpus: Double(plan.count),
            authToken: usesToken ? token : nil, extraEnvironment: environment, dashboardHost: headAddress,
            startTimeout: configuration.startTimeout, ports: ports, joinAddress: "\(headAddress):\(ports.gcs)",
            nodeAddress: address, serveGuard: configuration.serveGuard, dashboardPin: pin)
        progress("Joining \(headAddress):\(ports.gcs) as \(address)…")
        let ray = try await LocalRay.start(local)
        return HostNode(
            role: .worker, ray: ray, nodeAddress: address, headAddress: headAddress,
            subnet: interface?.subnet ?? address + "/32", gpus: plan,
            tokenSource: usesToken ? token?.source : nil, versions: versions,
            rayExecutable: configuration.environment.rayExecutable, warnings: warnings, startedAt: Date(),
            fingerprint: pin)
    }

    // MARK: Helpers

    /// The GPUs for Ray (from `nvidia-smi` and `--gpus`) and the environment that selects them.
    static func gpuSetup(
        _ configuration: HostNodeConfiguration, progress: @Sendable (String) -> Void
    ) async throws -> (GPUSelection.Plan, [String: String]) {
        let plan = try configuration.gpus.plan(detected: await GPUSelection.detect())
        progress(plan.summary)
        var environment: [String: String] = [:]
        if let devices = plan.visibleDevices { environment["CUDA_VISIBLE_DEVICES"] = devices }
        return (plan, environment)
    }

    /// Refuses a `--bind` that no other host can reach (loopback: the head's TLS front would also collide with
    /// Ray's own ports there) or that is not an address of this host.
    static func check(bind: String) throws {
        if HostNetwork.isLoopback(bind) {
            throw HostNodeError(
                .invalidArgument, "--bind \(bind) is this host's loopback, which no other host reaches",
                remedy:
                    "Pass this host's LAN address, or leave --bind out; for a cluster on this machine only, leave out "
                    + "--address (RayLAN's embedded local Ray).")
        }
        let addresses = HostNetwork.interfaces().map(\.address)
        guard addresses.contains(bind) else {
            throw HostNodeError(
                .invalidArgument,
                "--bind \(bind) is not an address of this host (it has \(addresses.joined(separator: ", ")))",
                remedy: "Pass one of this host's LAN addresses, or leave --bind out.")
        }
    }

    /// `bind` when it is an address of this host; else the address facing `peer` (or the LAN).
    static func nodeAddress(bind: String?, toward peer: String?) throws -> String {
        let addresses = HostNetwork.interfaces().map(\.address)
        if let bind {
            try check(bind: bind)
            return bind
        }
        let found = peer.flatMap(HostNetwork.sourceAddress(toward:)) ?? HostNetwork.lanAddress()
        guard let found, !HostNetwork.isLoopback(found) else {
            throw HostNodeError(
                .invalidArgument,
                peer.map { "No route from this host to \($0)" }
                    ?? "This host has no LAN address (only \(addresses.joined(separator: ", ")))",
                remedy: "Connect the host to the LAN, or pass --bind with its address.")
        }
        return found
    }

    static func nodePorts(_ ports: LocalRay.Ports) -> [Int] {
        [
            ports.nodeManager, ports.objectManager, ports.runtimeEnvAgent, ports.dashboardAgentGRPC,
            ports.dashboardAgentListen, ports.metrics,
        ]
    }

    /// Refuses to start when a pinned port is taken (another Ray, or another program).
    static func checkFree(_ ports: [Int], on address: String) throws {
        let taken = ports.filter { !FreePort.isFree($0, on: address) }
        guard taken.isEmpty else {
            throw HostNodeError(
                .portInUse,
                "Port\(taken.count > 1 ? "s" : "") \(taken.map(String.init).joined(separator: ", ")) on \(address) \(taken.count > 1 ? "are" : "is") in use (another Ray or another program)",
                remedy:
                    "Stop what listens there, or move RayLAN's ports with --port (the node ports follow it), --dashboard-port and --serve-port."
            )
        }
    }
}
