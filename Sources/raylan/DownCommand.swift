import ArgumentParser
import RayLAN

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop the private local Ray that RayLAN started on this machine.",
        discussion: """
            Ends exactly the processes of that cluster (its process groups: TERM, then KILL after 10 s). \
            Other Ray processes on this machine are left alone; RayLAN never runs 'ray stop'.
            """)

    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    struct Result: Encodable {
        var stopped: Bool
        var dashboardURL: String?
        var temporaryDirectory: String?
    }

    func run() async throws {
        try await reportingErrors {
            let ray = try await EmbeddedCluster.fromEnvironment().stop()
            if json {
                try Terminal.json(
                    Result(stopped: ray != nil, dashboardURL: ray?.address.description, temporaryDirectory: ray?.temporaryDirectory))
            } else if let ray {
                Terminal.out("Stopped the local Ray at \(ray.address).")
            } else {
                Terminal.out("No local Ray started by RayLAN is running.")
            }
        }
    }
}
