import ArgumentParser
import Foundation
import RayLAN

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show Ray and Python versions, every node with its CPU, GPU and memory use, and running jobs.",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var cluster: ClusterOptions
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                let state = try await cluster.state()
                if json {
                    try Terminal.json(state)
                } else {
                    Self.print(state)
                }
            }
        }
    }

    static func print(_ state: ClusterState) {
        let server = state.server
        Terminal.out(
            "Ray \(server.rayVersion) · Python \(server.pythonVersion ?? "?") · \(server.dashboardURL)"
                + (server.sessionName.map { " · \($0)" } ?? ""))
        Terminal.out("")
        let rows = state.nodes.map { node -> [String] in
            [
                node.ip, node.isHead ? "head" : "worker", node.state,
                "\(Terminal.number(node.cpus.used))/\(Terminal.number(node.cpus.total))",
                "\(Terminal.number(node.gpus.used))/\(Terminal.number(node.gpus.total))",
                node.hostMemory.map { "\(Terminal.bytes($0.used))/\(Terminal.bytes($0.total))" }
                    ?? Terminal.bytes(node.memory.total),
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
