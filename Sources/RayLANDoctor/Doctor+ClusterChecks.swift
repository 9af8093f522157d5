import Foundation
import NIOHTTP1
import RayLAN

extension Doctor {
    // MARK: 5. Versions

    func checkVersions(_ info: ServerInfo, probe: Result<NodeProbe, any Error>) -> DoctorCheck {
        let check = DoctorCheck.Builder(.versions)
        let head = "Ray \(info.rayVersion), Python \(info.pythonVersion ?? "?")"
        var tested: String?
        if info.rayVersion.isNewerThanTested {
            tested = "Ray \(info.rayVersion) is newer than RayLAN was tested with (\(RayVersion.supportedRange))."
        }
        guard case .success(let probed) = probe else {
            if case .failure(let error) = probe {
                return check(
                    .warn, "The cluster runs \(head); per-node versions were not read: \(error).",
                    remedy: "See the probe job's logs ('raylan job list').")
            }
            return check(.warn, "The cluster runs \(head).")
        }
        let answered = probed.nodes.filter { $0.error == nil }
        let details = answered.map {
            "\($0.ip ?? "?"): Ray \($0.ray_version ?? "?"), Python \($0.python_version ?? "?")"
        }
        let distinct = Set(answered.map { "Ray \($0.ray_version ?? "?"), Python \($0.python_version ?? "?")" })
        if distinct.count > 1 {
            return check(
                .fail, "Versions differ between nodes: \(details.joined(separator: "; ")).",
                remedy: "Install the head's versions (\(head)) on every node; Ray needs them identical.",
                details: details)
        }
        if let only = distinct.first, only != head {
            return check(
                .fail, "The nodes run \(only), but the cluster was started with \(head).",
                remedy: "Install \(head) on every node.", details: details)
        }
        if let tested {
            return check(
                .warn, "\(head) on all \(answered.count) node(s). \(tested)",
                remedy: "Expect small differences; report what breaks.", details: details)
        }
        return check(.pass, "\(head) on all \(answered.count) node(s).", details: details)
    }

    // MARK: 6. Nodes

    func checkNodes(_ state: Result<ClusterState, any Error>, probe: Result<NodeProbe, any Error>) -> DoctorCheck {
        let check = DoctorCheck.Builder(.nodes)
        let listed: [NodeInfo]
        switch state {
        case .success(let value): listed = value.nodes
        case .failure(let error):
            return check(
                .fail, "The node list could not be read: \(error).", remedy: "Run 'raylan status' for details.")
        }
        // The dashboard's node list lags the GCS by tens of seconds after a node stops; the probe job asked
        // the GCS just now, so a node it did not find alive is dead, whatever the list still says.
        let gcsAlive = (try? probe.get()).map { Set($0.nodes.compactMap(\.node_id)) }
        let nodes = listed.map { node -> NodeInfo in
            guard node.isAlive, let gcsAlive, !gcsAlive.contains(node.nodeID) else { return node }
            var stale = node
            stale.state = .dead
            return stale
        }
        let alive = nodes.filter(\.isAlive)
        // A node that died and came back is listed twice: only the dead entries without a live twin count.
        let dead = nodes.filter { node in !node.isAlive && !alive.contains { $0.ip == node.ip } }
        let details = nodes.map { node in
            "\(node.ip) \(node.isHead ? "head" : "worker") \(node.state): \(Formatting.number(node.cpus.total)) CPU, \(Formatting.number(node.gpus.total)) GPU"
        }
        let aliveText = alive.map { "\($0.ip) (\($0.isHead ? "head, " : "")\(Formatting.number($0.gpus.total)) GPU)" }
            .joined(separator: ", ")
        if !dead.isEmpty {
            return check(
                .fail,
                "\(dead.count) node(s) dead: \(dead.map(\.ip).joined(separator: ", ")); alive: \(aliveText.isEmpty ? "none" : aliveText).",
                remedy:
                    "Restart Ray on \(dead.map(\.ip).joined(separator: ", ")) ('raylan up --join HEAD' there) and check the network between it and the head; a node removed on purpose stays listed until the head restarts.",
                details: details)
        }
        if alive.isEmpty {
            return check(.fail, "No node is alive.", remedy: "Restart the head ('raylan up --head').", details: details)
        }
        return check(.pass, "\(alive.count) node(s) alive: \(aliveText).", details: details)
    }

    // MARK: 7. GPUs

    func checkGPUs(_ state: Result<ClusterState, any Error>, probe: Result<NodeProbe, any Error>) -> DoctorCheck {
        let check = DoctorCheck.Builder(.gpus)
        let alive = ((try? state.get())?.nodes ?? []).filter(\.isAlive)
        let probed: NodeProbe
        switch probe {
        case .success(let value): probed = value
        case .failure(let error):
            let declared = alive.filter { $0.gpus.total > 0 }
            if declared.isEmpty {
                return check(
                    .warn, "CPU-only cluster: no node declares a GPU (the probe job did not run: \(error)).",
                    remedy: Self.cpuOnlyRemedy)
            }
            return check(
                .warn,
                "GPUs declared on \(declared.map(\.ip).joined(separator: ", ")) were not tried: the probe job did not run (\(error)).",
                remedy:
                    "Run raylan from the RayLAN checkout (it uploads cluster/raylan_doctor), then run 'raylan doctor' again."
            )
        }
        var status = DoctorCheck.Status.pass
        var findings: [Finding] = []
        var remedies: [String] = []
        func note(_ level: DoctorCheck.Status, _ text: String, _ remedy: String? = nil) {
            status = max(status, level)
            findings.append(Finding(status: level, text: text))
            if let remedy, level != .pass { remedies.append(remedy) }
        }
        for node in probed.nodes.sorted(by: { ($0.ip ?? "") < ($1.ip ?? "") }) {
            let ip = node.ip ?? "?"
            let declared = node.gpus_declared ?? 0
            let smi = node.nvidia_smi
            let physical = smi?.gpus ?? []
            if let error = node.error {
                if declared > 0 {
                    note(
                        .fail, "\(ip): the GPU task did not run: \(error).",
                        "Check \(ip) with 'raylan status'; its GPUs may be held by other work.")
                }
                continue
            }
            if declared == 0 {
                if !physical.isEmpty {
                    note(
                        .warn,
                        "\(ip) has \(physical.count) GPU(s) (nvidia-smi: \(physical.compactMap(\.name).joined(separator: ", "))), but Ray registered none.",
                        "Restart Ray on \(ip) with 'raylan up --gpus all' (and check CUDA_VISIBLE_DEVICES there).")
                }
                continue
            }
            let gpuText = Formatting.number(declared)
            guard let smi, smi.found else {
                note(
                    .warn,
                    "\(ip) declares \(gpuText) GPU(s), but has no nvidia-smi: logical GPUs only; work that asks for a GPU runs on its CPU.",
                    "If \(ip) has an NVIDIA GPU, install its driver (nvidia-smi must work); otherwise start it without --gpus."
                )
                continue
            }
            if let error = smi.error {
                note(
                    .fail, "\(ip): nvidia-smi fails: \(error).",
                    "Fix the NVIDIA driver on \(ip): 'nvidia-smi' must list the GPUs.")
                continue
            }
            let names = physical.map { "\($0.name ?? "GPU") (\(Formatting.number($0.memory_total_mib ?? 0)) MiB)" }
                .joined(separator: ", ")
            guard let torch = node.torch, torch.installed else {
                note(
                    .warn,
                    "\(ip): \(names); torch is not installed in the cluster's Python, so the detection service cannot run there.",
                    "Install cluster/requirements.txt in the Python environment Ray runs from on \(ip).")
                continue
            }
            guard torch.available == true else {
                note(
                    .fail,
                    "\(ip): nvidia-smi shows \(names), but torch \(torch.version ?? "?") cannot use it (CUDA build: \(torch.cuda_build ?? "none")) — the seed's 'task did not use the GPU'.",
                    "Install a CUDA build of torch that matches the driver on \(ip) (pip's default torch for Linux is one)."
                )
                continue
            }
            if torch.matmul_ok == false {
                note(
                    .fail,
                    "\(ip): torch sees \(torch.devices?.joined(separator: ", ") ?? "the GPU"), but a tiny CUDA computation failed: \(torch.error ?? "").",
                    "Check the driver and GPU health on \(ip) (nvidia-smi -q).")
                continue
            }
            let reserved =
                (node.gpus_reserved ?? 0) > 0 ? "" : " (all GPUs were busy, so the task ran without reserving one)"
            note(.pass, "\(ip): \(names); torch \(torch.version ?? "?") ran on CUDA\(reserved).")
        }
        let gpuNodes = probed.nodes.filter { ($0.gpus_declared ?? 0) > 0 }
        let details = findings.map(\.text)
        if gpuNodes.isEmpty && status == .pass {
            return check(
                .warn, "CPU-only cluster: no node declares a GPU.", remedy: Self.cpuOnlyRemedy, details: details)
        }
        // With a problem, the summary names only the problems; every finding stays in the details.
        let shown = status == .pass ? findings : findings.filter { $0.status != .pass }
        let summary =
            (status == .pass ? "GPUs usable on \(gpuNodes.count) node(s): " : "")
            + shown.map(\.text).joined(separator: " ")
        return check(status, summary, remedy: remedies.first, details: details)
    }

    /// One finding of a check (a node's GPUs, a Serve application): how it fared, the sentence that says so, and
    /// what to do about it where something is wrong.
    struct Finding: Hashable {
        var status: DoctorCheck.Status
        var text: String
        var remedy: String? = nil
    }

    static let cpuOnlyRemedy =
        "Fine for trying RayLAN; for GPU inference run 'raylan up --head' (or --join) on the GPU host, where nvidia-smi must list the GPUs."

    // MARK: 8. Serve

    func checkServe(_ address: ClusterAddress, cluster: RayCluster, ports: Ports) async -> DoctorCheck {
        let check = DoctorCheck.Builder(.serve)
        let serve: ServeStatus
        do {
            // Check 2 read it already (to learn Serve's port); ask again only when that failed.
            if let known = ports.serve { serve = known } else { serve = try await cluster.serveStatus() }
        } catch {
            return check(
                .fail, "Serve's status could not be read: \(error).",
                remedy: "Check the dashboard's log on the head (dashboard_ServeHead.log).")
        }
        let proxies = serve.proxies ?? [:]
        if proxies.isEmpty && serve.applications.isEmpty {
            return check(
                .pass,
                "Serve is not running; no detection service is deployed ('raylan serve deploy MODEL' starts one).")
        }
        let port = serve.httpOptions?.port ?? ports.servePort
        var status = DoctorCheck.Status.pass
        var lines: [String] = []
        var remedy: String?
        var details = proxies.values.map { "proxy on \($0.nodeIP ?? "?"): \($0.status?.rawValue ?? "?")" }.sorted()
        let unhealthy = proxies.values.filter { $0.status != .healthy }
        if !unhealthy.isEmpty {
            status = .warn
            lines.append(
                "Serve proxies not healthy: \(unhealthy.map { "\($0.nodeIP ?? "?") \($0.status?.rawValue ?? "?")" }.joined(separator: ", "))."
            )
            remedy = "Wait a few seconds after a node joins; if it stays, see the proxy's log on that node."
        }
        let proxy = ServeEndpoint(address: address, port: port)
        let health = try? await cluster.send(.GET, to: proxy, "/-/healthz", timeout: .seconds(5))
        let noRoutes = serve.applications.isEmpty && health.map(Self.isEmptyRouteTable) == true
        if let health {
            // Any HTTP answer means the port is open: a non-200 is Serve's state (see the applications below),
            // never the firewall's doing.
            let note =
                health.status == 200 ? "" : noRoutes ? " (no routes yet)" : " (/-/healthz: HTTP \(health.status))"
            lines.append("The Serve proxy answers at \(address.host):\(port)\(note).")
        } else {
            status = .fail
            lines.append("The Serve proxy at \(address.host):\(port) does not answer (no connection).")
            remedy =
                "Check the firewall on \(address.host) for port \(port), and that Serve's proxy runs there ('raylan serve status')."
        }
        for app in serve.applications.values.sorted(by: { $0.name < $1.name }) {
            let replicas = (app.deployments ?? [:]).values.flatMap { $0.replicas ?? [] }
            let placed = Dictionary(grouping: replicas, by: { $0.nodeIP ?? "?" }).map {
                "\($0.value.count) on \($0.key)"
            }.sorted()
            details.append(
                "application \(app.name) (\(app.routePrefix ?? "")): \(app.status), replicas \(placed.joined(separator: ", "))"
            )
            let finding = Self.serveFinding(app)
            status = max(status, finding.status)
            lines.append(finding.text)
            // An application's failure is the finding, not the network: its remedy replaces the proxy's.
            if finding.status == .fail { remedy = finding.remedy } else { remedy = remedy ?? finding.remedy }
        }
        if serve.applications.isEmpty { lines.append("No detection service is deployed.") }
        return check(status, lines.joined(separator: " "), remedy: remedy, details: details)
    }

    /// One application's finding in the serve check: RUNNING passes; DEPLOYING warns; any other state fails with
    /// Ray's reason, and the remedy of a fault RayLAN knows in it (``RaySays/knownFault(in:)``, such as Ray 2.45
    /// with protobuf 7) or else the generic one.
    static func serveFinding(_ app: ServeStatus.Application) -> Finding {
        switch app.status {
        case .running:
            let replicas = (app.deployments ?? [:]).values.reduce(0) { $0 + ($1.replicas ?? []).count }
            return Finding(status: .pass, text: "'\(app.name)' RUNNING with \(replicas) replica(s).")
        case .deploying:
            return Finding(
                status: .warn, text: "'\(app.name)' is still DEPLOYING.",
                remedy: "Wait for it ('raylan serve status'); a replica waiting for a GPU stays DEPLOYING.")
        default:
            // Ray's own error (the replica's exception for DEPLOY_FAILED) is the finding, not the network.
            return Finding(
                status: .fail, text: "'\(app.name)' is \(app.status): \(RayCluster.failureSummary(app))",
                remedy: RayCluster.knownFault(app)?.description
                    ?? "Fix the cause Ray gives ('raylan serve status' shows the whole traceback) and deploy again "
                    + "('raylan serve deploy').")
        }
    }

    /// Whether Serve's proxy answered `/-/healthz` with its 503 "Route table is not populated yet": no
    /// application is deployed, and the proxy itself is up.
    ///
    /// Ray marks this answer with nothing but its text (no code, no header), so this protocol string is
    /// matched here and nowhere else.
    static func isEmptyRouteTable(_ response: RayCluster.Response) -> Bool {
        response.status == 503 && response.text.contains("not populated")
    }
}
