import Foundation
import NIOHTTP1
import RayLAN

/// `raylan doctor`: eight checks, in order, of everything that broke the seed's LAN set-up, each with
/// PASS / WARN / FAIL and a one-line remedy.
///
/// ```swift
/// let report = await Doctor(Doctor.Configuration(address: "192.168.1.130")).run { check in print(check.summary) }
/// ```
public struct Doctor: Sendable {
    /// What to check. Every parameter has a documented default.
    public struct Configuration: Sendable {
        /// The address as the user gave it. Default nil: the embedded local cluster, `local`.
        public var address: String?
        /// The token to send. Default nil.
        public var token: AuthToken?
        /// The embedded local cluster, when `address` is nil. Default nil.
        public var local: LocalRay?
        /// RayLAN's cluster code, for the probe job of checks 5 and 7. Default nil: those checks use only
        /// what the dashboard reports.
        public var code: ClusterCode?
        /// How long a TCP connect may take before the port counts as dropped. Default 3 s.
        public var connectTimeout: Duration
        /// How long the probe job may take. Default 150 s.
        public var probeTimeout: Duration
        /// The head's certificate pin (`--fingerprint`). Default nil: the recorded one, else ``trust`` decides.
        public var pin: CertificatePin?
        /// Which certificates to trust beyond a pin. Default: recorded ones only.
        public var trust: RayCluster.Configuration.Trust

        public init(
            address: String? = nil, token: AuthToken? = nil, local: LocalRay? = nil, code: ClusterCode? = nil,
            connectTimeout: Duration = .seconds(3), probeTimeout: Duration = .seconds(150), pin: CertificatePin? = nil,
            trust: RayCluster.Configuration.Trust = .init()
        ) {
            self.pin = pin
            self.trust = trust
            self.address = address
            self.token = token
            self.local = local
            self.code = code
            self.connectTimeout = connectTimeout
            self.probeTimeout = probeTimeout
        }
    }

    public var configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Runs the checks in order; `progress` gets each as it finishes. Checks that cannot run after a
    /// FAIL (an unreachable dashboard, a refused token) are SKIPped with the reason.
    public func run(progress: @Sendable (DoctorCheck) -> Void = { _ in }) async -> DoctorReport {
        var checks: [DoctorCheck] = []
        let (address, first) = await timed { checkAddress() }
        Self.add(first, to: &checks, progress)
        guard let address else {
            Self.skipRest("the address does not parse", &checks, progress)
            return DoctorReport(address: configuration.address ?? "", checks: checks)
        }
        let cluster = RayCluster(
            address: address,
            configuration: .init(
                token: configuration.token,
                timeouts: .init(connect: configuration.connectTimeout, request: .seconds(20)),
                trust: configuration.trust))
        await clusterChecks(address, cluster: cluster, &checks, progress)
        try? await cluster.shutdown()
        return DoctorReport(address: address.description, checks: checks)
    }

    static func add(_ check: DoctorCheck, to checks: inout [DoctorCheck], _ progress: @Sendable (DoctorCheck) -> Void) {
        checks.append(check)
        progress(check)
    }

    static func skipRest(_ reason: String, _ checks: inout [DoctorCheck], _ progress: @Sendable (DoctorCheck) -> Void) {
        for kind in DoctorCheck.Kind.allCases.dropFirst(checks.count) {
            add(DoctorCheck(kind, status: .skip, summary: "Not run: \(reason)."), to: &checks, progress)
        }
    }

    /// Checks 2–8, against the dashboard at `address`.
    func clusterChecks(
        _ address: ClusterAddress, cluster: RayCluster, _ checks: inout [DoctorCheck],
        _ progress: @Sendable (DoctorCheck) -> Void
    ) async {
        let (ports, second) = await timed { await checkPorts(address, cluster: cluster) }
        Self.add(second, to: &checks, progress)
        guard ports.dashboardOpen else {
            Self.skipRest(
                "the dashboard at \(address.host):\(address.port) cannot be reached (check 2)", &checks, progress)
            return
        }
        let (exposed, third) = await timed { await checkDashboard(address, cluster: cluster) }
        Self.add(third, to: &checks, progress)
        let (info, fourth) = await timed {
            await checkAuthentication(address, cluster: cluster, exposed: exposed, serve: ports.serve)
        }
        Self.add(fourth, to: &checks, progress)
        guard let info else {
            Self.skipRest("the cluster did not accept this machine (check 4)", &checks, progress)
            return
        }
        // Checks 5–7 share the cluster state and the probe job (one task on every node).
        let clock = ContinuousClock()
        let started = clock.now
        async let stateResult = Result(catching: { try await cluster.state() })
        let probe: Result<NodeProbe, any Error>
        if let code = configuration.code {
            probe = await Result(catching: {
                try await cluster.probeNodes(code: code, timeout: configuration.probeTimeout)
            })
        } else {
            probe = .failure(
                ServeError(.clusterCodeMissing, "RayLAN's cluster code (cluster/raylan_doctor) was not found"))
        }
        let state = await stateResult
        let shared = (clock.now - started).seconds
        Self.add(checkVersions(info, probe: probe).taking(shared), to: &checks, progress)
        Self.add(checkNodes(state, probe: probe).taking(0), to: &checks, progress)
        Self.add(checkGPUs(state, probe: probe).taking(0), to: &checks, progress)
        let (_, eighth) = await timed { ((), await checkServe(address, cluster: cluster, ports: ports)) }
        Self.add(eighth, to: &checks, progress)
    }

    /// Runs `body` and stamps its check with the time it took.
    func timed<Value>(_ body: () async -> (Value, DoctorCheck)) async -> (Value, DoctorCheck) {
        let clock = ContinuousClock()
        let start = clock.now
        var (value, check) = await body()
        check.seconds = (clock.now - start).seconds
        return (value, check)
    }

    // MARK: 1. Address

    func checkAddress() -> (ClusterAddress?, DoctorCheck) {
        let check = DoctorCheck.Builder(.address)
        guard let text = configuration.address else {
            let address = configuration.local?.address
            return (
                address,
                address == nil
                    ? check(
                        .fail, "No address given and no embedded local cluster.",
                        remedy: "Pass --address HOST of the Ray head.")
                    : check(.pass, "No address: the embedded local cluster at \(address!).")
            )
        }
        var address: ClusterAddress
        do {
            address = try ClusterAddress(parsing: text)
            if let pin = configuration.pin { address = address.pinned(pin) }
        } catch let error as ClusterError {
            return (nil, check(.fail, error.message + ".", remedy: error.remedy))
        } catch {
            return (
                nil,
                check(
                    .fail, "Invalid address '\(text)': \(error).",
                    remedy: "Use HOST, HOST:PORT, https://HOST:PORT or http://HOST:PORT of the Ray dashboard.")
            )
        }
        if text.lowercased().hasPrefix("ray://") {
            return (
                address,
                check(
                    .fail,
                    "'\(text)' is the seed's Ray Client form: ray:// is Ray Client's pickled gRPC (port \(ClusterAddress.rayClientPort)), \(ClusterAddress.gcsPort) is the GCS, and RayLAN talks to neither; the rest is checked at \(address).",
                    remedy: "Use --address \(address.host) (the dashboard, \(address.url.absoluteString)).",
                    details: address.notes)
            )
        }
        return (address, check(.pass, "\(text) parses as the dashboard \(address).", details: address.notes))
    }

    // MARK: 2. Ports

    struct Ports {
        var dashboardOpen: Bool
        /// Serve's port, state and applications, when the dashboard told them.
        var serve: ServeStatus?
        var servePort: Int
    }

    func checkPorts(_ address: ClusterAddress, cluster: RayCluster) async -> (Ports, DoctorCheck) {
        let check = DoctorCheck.Builder(.ports)
        let local = configuration.local?.ports
        // Serve's port is Serve's to say; ask the dashboard first when it answers quickly.
        let serve = try? await cluster.serveStatus()
        let servePort = serve?.httpOptions?.port ?? local?.serve ?? LocalRay.Ports.defaultServe
        let serveRunning = !(serve?.proxies ?? [:]).isEmpty
        let deployed = !(serve?.applications ?? [:]).isEmpty
        let targets: [(name: String, port: Int, required: DoctorCheck.Status)] = [
            ("dashboard", address.port, .fail),
            ("GCS", local?.gcs ?? LocalRay.Ports.defaultGCS, .warn),
            ("Ray Client server", local?.rayClient ?? LocalRay.Ports.defaultRayClient, .warn),
            ("Serve HTTP proxy", servePort, deployed ? .fail : (serveRunning ? .warn : .pass)),
        ]
        let timeout = configuration.connectTimeout
        let probes = await withTaskGroup(of: (Int, PortProbe).self) { group in
            for (index, target) in targets.enumerated() {
                group.addTask {
                    (index, await PortProbe.probe(host: address.host, port: target.port, timeout: timeout))
                }
            }
            var results: [Int: PortProbe] = [:]
            for await (index, probe) in group { results[index] = probe }
            return results
        }
        var status = DoctorCheck.Status.pass
        var details: [String] = []
        var remedies: [String] = []
        var problems: [String] = []
        for (index, target) in targets.enumerated() {
            guard let probe = probes[index] else { continue }
            let time = String(format: "%.1f ms", probe.milliseconds)
            switch probe.outcome {
            case .open:
                details.append("\(target.name) port \(target.port): open (\(time))")
            case .refused, .dropped, .unreachable:
                let what: String
                let remedy: String
                switch probe.outcome {
                case .dropped:
                    what = "no answer in \(timeout) (packets dropped)"
                    remedy =
                        "Check the firewall on \(address.host) for port \(target.port): packets to it are dropped ('raylan up --head' prints the rules to add)."
                case .refused:
                    what = "connection refused after \(time)"
                    remedy =
                        target.port == servePort && !serveRunning
                        ? "Serve is not running: 'raylan serve deploy' (or 'raylan up --head') starts its proxy."
                        : "Nothing listens on \(address.host):\(target.port), or a firewall rejects it: is Ray running there ('raylan up --head')?"
                default:
                    what = probe.reason ?? "unreachable"
                    remedy =
                        "No route to \(address.host): check the address and that this machine is on the same network."
                }
                let severity =
                    target.name == "Serve HTTP proxy" && !serveRunning ? DoctorCheck.Status.pass : target.required
                details.append("\(target.name) port \(target.port): \(what)")
                if severity != .pass {
                    status = max(status, severity)
                    problems.append("\(target.name) port \(target.port) on \(address.host): \(what)")
                    remedies.append(remedy)
                }
            }
        }
        let summary =
            problems.isEmpty
            ? "Reached \(address.host) on "
                + targets.enumerated().filter { probes[$0.offset]?.outcome == .open }
                .map { "\($0.element.port) (\($0.element.name))" }.joined(separator: ", ") + "."
            : problems.joined(separator: "; ") + "."
        let open = probes[0]?.outcome == .open
        return (
            Ports(dashboardOpen: open, serve: serve, servePort: servePort),
            check(status, summary, remedy: remedies.first, details: details)
        )
    }

    // MARK: 3. Dashboard binding

    /// Returns whether the dashboard is reachable from other hosts.
    func checkDashboard(_ address: ClusterAddress, cluster: RayCluster) async -> (Bool, DoctorCheck) {
        let check = DoctorCheck.Builder(.dashboard)
        // The protocol and the certificate first: a certificate that is not the pinned one, or a server that does
        // not speak TLS, is named before any request is sent.
        if address.scheme == "https" {
            do {
                _ = try await cluster.tlsConfiguration(for: address)
            } catch let error as ClusterError where error.code != .unreachable {
                return (false, check(.fail, error.message + ".", remedy: error.remedy))
            } catch {}
        }
        var (exposed, result) = await checkDashboardAnswers(address, cluster: cluster)
        guard result.status == .pass, configuration.address != nil else { return (exposed, result) }
        if address.scheme == "https" {
            let trust =
                await cluster.pin(for: address).map { "its certificate pinned (\($0))" }
                ?? "a certificate the system trusts"
            result.summary += " Over TLS, \(trust)."
        } else if !address.isLoopback {
            result.status = .warn
            result.summary += " Over plain HTTP: the token and service keys cross the LAN in clear."
            result.remedy = "Start the head with 'raylan up --head' (TLS on the LAN), and connect without http://."
            exposed = true
        }
        return (exposed, result)
    }

    func checkDashboardAnswers(_ address: ClusterAddress, cluster: RayCluster) async -> (Bool, DoctorCheck) {
        let check = DoctorCheck.Builder(.dashboard)
        // Any HTTP answer counts, 401 included: authentication is check 4.
        let answers: Bool
        do {
            _ = try await cluster.send(.GET, "/api/version")
            answers = true
        } catch let error as ClusterError where error.code == .unauthorized || error.code == .forbidden {
            answers = true
        } catch {
            answers = false
        }
        guard answers else {
            return (
                false,
                check(
                    .fail, "Port \(address.port) on \(address.host) is open, but no Ray dashboard answers there.",
                    remedy: "Check that \(address.port) is Ray's dashboard port on \(address.host) (--dashboard-port).")
            )
        }
        if configuration.address == nil {
            return (
                false,
                check(
                    .pass,
                    "The embedded cluster's dashboard answers at \(address); it listens on 127.0.0.1, private to this machine by design."
                )
            )
        }
        guard HostNetwork.isLocal(address.host) else {
            return (
                true,
                check(
                    .pass,
                    "The dashboard answers at \(address) from this machine, so it is not bound to localhost only.")
            )
        }
        guard HostNetwork.isLoopback(address.host) else {
            return (true, check(.pass, "The dashboard answers at \(address), a LAN address of this host."))
        }
        // On the head itself through loopback: does it also listen where the LAN can reach it?
        let lan = HostNetwork.interfaces().filter { !$0.isLoopback }
        var reachable: [String] = []
        for interface in lan {
            let probe = await PortProbe.probe(
                host: interface.address, port: address.port, timeout: configuration.connectTimeout)
            if probe.outcome == .open { reachable.append(interface.address) }
        }
        if reachable.isEmpty {
            return (
                false,
                check(
                    .warn,
                    "The dashboard listens on loopback only: other hosts and the Mac cannot reach it (the seed's localhost pitfall).",
                    remedy: "Start the head with 'raylan up --head' (or ray start --dashboard-host=0.0.0.0).",
                    details: lan.map { "\($0.address):\(address.port): closed" })
            )
        }
        return (
            true,
            check(
                .pass,
                "The dashboard answers on loopback and on \(reachable.joined(separator: ", ")), so other hosts can reach it."
            )
        )
    }

    // MARK: 4. Authentication

    func checkAuthentication(
        _ address: ClusterAddress, cluster: RayCluster, exposed: Bool, serve: ServeStatus?
    ) async -> (ServerInfo?, DoctorCheck) {
        let check = DoctorCheck.Builder(.authentication)
        let mode = await cluster.authenticationMode()
        let modeText = mode.map { "mode \($0)" } ?? "no token mode in this Ray"
        let info: ServerInfo
        do {
            info = try await cluster.serverInfo()
        } catch let error as ClusterError {
            return (nil, check(.fail, error.message + " (\(modeText)).", remedy: error.remedy))
        } catch {
            return (
                nil,
                check(.fail, "The dashboard's handshake failed: \(error).", remedy: "Run 'raylan status' for details.")
            )
        }
        var status = DoctorCheck.Status.pass
        var lines: [String] = []
        var remedy: String?
        if mode == .token {
            lines.append("Token authentication is on; the \(configuration.token?.description ?? "token") is accepted.")
        } else if exposed {
            status = .warn
            lines.append(
                "No authentication (\(modeText)), and the dashboard is reachable from the LAN: anyone who reaches port \(address.port) can run code on this cluster."
            )
            remedy =
                "Restart the head with 'raylan up --head' (token authentication, Ray ≥ 2.52), or open port \(address.port) only to trusted hosts."
        } else {
            lines.append("No authentication (\(modeText)); the dashboard is reachable from this machine only.")
        }
        if let serve {
            let services = await probeServices(serve, cluster: cluster)
            let port = serve.httpOptions?.port ?? LocalRay.Ports.defaultServe
            if !services.open.isEmpty {
                status = .fail
                lines.append(
                    "The detection service \(services.open.joined(separator: ", ")) on port \(port) answered an anonymous "
                        + "request: anyone who reaches the port can use it and its GPU.")
                remedy =
                    "Redeploy without --public ('raylan serve deploy --model …'): it then requires the service key."
            }
            if !services.keyed.isEmpty {
                lines.append(
                    "The detection service \(services.keyed.joined(separator: ", ")) refused an anonymous request (HTTP 401): "
                        + "it requires its service key.")
                if mode != .token && exposed {
                    status = max(status, .warn)
                    lines.append(
                        "Its key is kept in the deployment, readable through the dashboard, which has no authentication: "
                            + "the key is as open as the dashboard.")
                    remedy = remedy ?? "Restart the head with 'raylan up --head' (token authentication, Ray ≥ 2.52)."
                }
            }
        }
        return (info, check(status, lines.joined(separator: " "), remedy: remedy))
    }

    /// Sends an anonymous request (no key) to each running RayLAN detection service: the names that refused it
    /// (401) and those that answered (200).
    func probeServices(_ serve: ServeStatus, cluster: RayCluster) async -> (keyed: [String], open: [String]) {
        var keyed: [String] = []
        var open: [String] = []
        for app in serve.applications.values.sorted(by: { $0.name < $1.name }) where app.isRayLANDetection {
            guard let endpoint = try? cluster.serveEndpoint(for: app.name, in: serve) else { continue }
            let answer = try? await cluster.send(.GET, to: endpoint.anonymous, "/models", timeout: .seconds(5))
            switch answer?.status {
            case 401: keyed.append("'\(app.name)'")
            case 200: open.append("'\(app.name)'")
            default: continue
            }
        }
        return (keyed, open)
    }
}
