import ArgumentParser
import Foundation
import RayLAN

/// `raylan tls-front`: the head's TLS front, as `raylan up --head` starts it (hidden; see ``TLSFront``).
struct TLSFrontCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls-front",
        abstract:
            "Serve loopback servers on the LAN over TLS (started by 'raylan up --head'; stopped by 'raylan down').",
        shouldDisplay: false)

    @Option(name: .long, help: ArgumentHelp("The Ray node's temp dir, which this front belongs to.", valueName: "dir"))
    var tempDir: String
    @Option(name: .long, help: ArgumentHelp("The certificate (PEM).", valueName: "file")) var certificate: String
    @Option(name: .long, help: ArgumentHelp("The private key (PEM).", valueName: "file")) var key: String
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A listener: TLS on HOST:PORT, relayed to 127.0.0.1:UPSTREAM.", valueName: "host:port=upstream"))
    var route: [String] = []

    func validate() throws {
        guard !route.isEmpty else { throw ValidationError("Pass at least one --route HOST:PORT=UPSTREAM_PORT.") }
        for text in route where TLSFront.Route(parsing: text) == nil {
            throw ValidationError("--route \(text) is not HOST:PORT=UPSTREAM_PORT.")
        }
    }

    func run() async throws {
        let front = TLSFront(
            routes: route.compactMap(TLSFront.Route.init(parsing:)), certificateFile: certificate, keyFile: key)
        try await reportingErrors {
            try await front.run { ports in
                Terminal.error("TLS front listening: \(ports.map(String.init).joined(separator: ", "))")
            }
        }
    }
}
