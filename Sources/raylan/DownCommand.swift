import ArgumentParser
import RayLAN

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract:
            "Stop the Ray that RayLAN started on this machine: the node of 'raylan up' and the private local Ray.",
        discussion: """
            Ends exactly the processes of what RayLAN started (their process groups: TERM, then KILL after \
            10 s). Other Ray processes on this machine are left alone; RayLAN never runs 'ray stop'. A \
            record whose pid is no longer RayLAN's 'ray start' (same pid, start time, boot and --temp-dir) \
            is removed as stale, and nothing is signalled for it.
            """)

    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    struct Node: Encodable {
        var role: String
        var nodeAddress: String
        var dashboardURL: String
    }

    struct Result: Encodable {
        /// Whether the private local Ray was stopped.
        var stopped: Bool
        var dashboardURL: String?
        var temporaryDirectory: String?
        /// The node of 'raylan up' that was stopped.
        var node: Node?
        /// Records removed because they no longer described a Ray that RayLAN started (nothing signalled).
        var staleRecords: [String]
    }

    func run() async throws {
        try await reportingErrors {
            let down = try await HostNode.down()
            let embedded = try await EmbeddedCluster.fromEnvironment().stop()
            let node = down?.stale == nil ? down?.node : nil
            let ray = embedded?.stale == nil ? embedded?.ray : nil
            let stale = [down?.stale, embedded?.stale].compactMap { $0?.description }
            if json {
                try Terminal.json(
                    Result(
                        stopped: ray != nil, dashboardURL: ray?.address.description,
                        temporaryDirectory: ray?.temporaryDirectory,
                        node: node.map {
                            Node(role: $0.role.rawValue, nodeAddress: $0.nodeAddress, dashboardURL: $0.dashboardURL)
                        },
                        staleRecords: stale))
                return
            }
            stale.forEach { Terminal.error($0) }
            if let node {
                Terminal.out("Stopped the Ray \(node.role.rawValue) that 'raylan up' started on \(node.nodeAddress).")
            }
            if let ray {
                Terminal.out("Stopped the local Ray at \(ray.address).")
            }
            if node == nil && ray == nil {
                Terminal.out("No Ray started by RayLAN is running on this machine.")
            }
        }
    }
}
