import ArgumentParser
import Foundation
import RayLAN

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show Ray and Python versions, every node with its CPU, GPU and memory use, Serve replicas and running jobs.",
        discussion: """
            With --watch, the view refreshes every --interval seconds until Ctrl-C (with --json: one JSON \
            object per line and refresh).

            Exit codes: \(ExitCodes.summary)
            """)

    @OptionGroup var cluster: ClusterOptions
    @Flag(name: .long, help: "Refresh the view until Ctrl-C.") var watch = false
    @Option(name: .long, help: ArgumentHelp("Seconds between refreshes with --watch.", valueName: "s")) var interval =
        2.0
    @OptionGroup var output: OutputOptions
    @Flag(name: .long, help: "With --json --watch: print each service's key (as api_key) where this client has it.")
    var showKeys = false

    func validate() throws {
        guard interval >= 0.2 && interval <= 3600 else {
            throw ValidationError("--interval \(interval) is out of range; use 0.2 to 3600 seconds.")
        }
    }

    /// What one view shows.
    struct Snapshot: Encodable {
        var time: Date
        var state: ClusterState
        var serve: ServeStatus?
    }

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                guard watch else {
                    let snapshot = try await Self.snapshot(cluster)
                    if output.json { try Terminal.json(snapshot.state) } else { Self.print(snapshot) }
                    return
                }
                try await watchLoop(cluster)
            }
        }
    }

    static func snapshot(_ cluster: RayCluster) async throws -> Snapshot {
        try await snapshot(cluster, showingKeys: false)
    }

    /// A view whose Serve status holds no key in clear unless `showingKeys`.
    static func snapshot(_ cluster: RayCluster, showingKeys: Bool) async throws -> Snapshot {
        async let serve = try? cluster.serveStatus()
        let state = try await cluster.state()
        let printable = await serve?.printable(showingKeys: showingKeys, token: cluster.configuration.token)
        return Snapshot(time: Date(), state: state, serve: printable)
    }

    /// Redraws until Ctrl-C, which ends the command cleanly (exit 0). A failed refresh is shown and retried.
    func watchLoop(_ cluster: RayCluster) async throws {
        let json = output.json
        let interval = self.interval
        let clear = Terminal.stdoutIsTerminal && !json
        let loop = Task {
            while !Task.isCancelled {
                do {
                    let snapshot = try await Self.snapshot(cluster, showingKeys: showKeys)
                    if json {
                        Terminal.jsonLine(snapshot)
                    } else {
                        if clear { Terminal.clearScreen() } else { Terminal.out("") }
                        Terminal.out(
                            "raylan status --watch · every \(Terminal.number(interval)) s · \(Self.clock(snapshot.time)) · Ctrl-C to stop"
                        )
                        Self.print(snapshot)
                    }
                } catch is CancellationError {
                    return
                } catch {
                    Terminal.error("\(Self.clock(Date())) refresh failed: \(error)")
                }
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
        Interrupt.shared.arm { loop.cancel() }
        await loop.value
        Interrupt.shared.disarm()
    }

    static func clock(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: date)
    }

    static func print(_ snapshot: Snapshot) {
        print(snapshot.state)
        guard let serve = snapshot.serve, !serve.applications.isEmpty else { return }
        Terminal.out("")
        Terminal.out("Serve (port \(serve.httpOptions?.port.map(String.init) ?? "?")):")
        let rows = serve.applications.values.sorted { $0.name < $1.name }.flatMap { app in
            (app.deployments ?? [:]).values.sorted { $0.name < $1.name }.map { deployment -> [String] in
                let replicas = deployment.replicas ?? []
                let byNode = Dictionary(grouping: replicas, by: { $0.nodeIP ?? "?" })
                    .map { "\($0.value.count)×\($0.key)" }.sorted().joined(separator: ", ")
                return [
                    app.name, app.status.rawValue, deployment.name, deployment.status?.rawValue ?? "?",
                    "\(replicas.count)", byNode,
                ]
            }
        }
        Terminal.table(["APPLICATION", "STATUS", "DEPLOYMENT", "HEALTH", "REPLICAS", "ON NODES"], rows)
            .forEach { Terminal.out("  " + $0) }
    }

    static func print(_ state: ClusterState) {
        let server = state.server
        Terminal.out(
            "Ray \(server.rayVersion) · Python \(server.pythonVersion ?? "?") · \(server.dashboardURL)"
                + (server.sessionName.map { " · \($0)" } ?? ""))
        Terminal.out("")
        let rows = state.nodes.map { node -> [String] in
            [
                node.ip, node.isHead ? "head" : "worker", node.state.rawValue,
                "\(Terminal.number(node.cpus.used))/\(Terminal.number(node.cpus.total))",
                "\(Terminal.number(node.gpus.used))/\(Terminal.number(node.gpus.total))",
                node.hostMemory.map { "\(Formatting.bytes($0.used))/\(Formatting.bytes($0.total))" }
                    ?? Formatting.bytes(node.memory.total),
                node.customResources.sorted { $0.key < $1.key }
                    .map { "\($0.key) \(Terminal.number($0.value.used))/\(Terminal.number($0.value.total))" }
                    .joined(separator: ", "),
            ]
        }
        Terminal.table(["NODE", "ROLE", "STATE", "CPU USED/TOTAL", "GPU USED/TOTAL", "MEMORY", "OTHER"], rows)
            .forEach(Terminal.out)
        for node in state.nodes {
            for gpu in node.gpuDevices {
                Terminal.out(
                    "  \(node.ip) GPU \(gpu.index.map(String.init) ?? "?"): \(gpu.name ?? "?") "
                        + "\(Terminal.number(gpu.utilization ?? 0))% busy, "
                        + "\(Terminal.number(gpu.memoryUsedMiB ?? 0))/\(Terminal.number(gpu.memoryTotalMiB ?? 0)) MiB")
            }
        }
        Terminal.out("")
        if state.activeJobs.isEmpty {
            Terminal.out("Running jobs: none")
        } else {
            Terminal.out("Running jobs:")
            JobListCommand.table(state.activeJobs).forEach { Terminal.out("  " + $0) }
        }
    }
}
