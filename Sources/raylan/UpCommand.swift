import ArgumentParser
import Foundation
import RayLAN

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract:
            "Start Ray on this host for the LAN: the GPU host's head (--head), or a node that joins it (--join HEAD).",
        discussion: """
            Every port Ray opens is pinned (GCS P and P+1…P+8 for node services, 8265 dashboard, 8000 Serve, \
            10001 Ray Client, 10002–10999 workers), so a firewall can be written for them; the head prints the \
            ufw and firewalld rules, the line for other hosts and the line for the Mac. GPUs come from nvidia-smi \
            (none: a CPU node). Token authentication is on unless --insecure; it needs Ray ≥ 2.52, and a head on an \
            older Ray is refused (exit 64) unless --insecure accepts a dashboard open to the LAN. A joining host \
            must run the head's Ray and Python versions. Stop the node with 'raylan down'.

            The head serves its dashboard and Serve on the LAN over TLS only (a TLS front in front of Ray, which \
            listens on 127.0.0.1), with a key and self-signed certificate made once in ~/.raylan/tls; it prints \
            the certificate's fingerprint, which clients and joining hosts pin with --fingerprint. Ray's own \
            traffic between nodes (GCS, object transfer) is not encrypted: see docs/security.md.

            Exit codes: 0 started; 1 Ray did not start; 64 bad input, or a head on Ray < 2.52 without --insecure; \
            69 the head cannot be reached; 77 the head wants a token, or its certificate is not the pinned one; \(ExitCodes.versionMismatch) Ray or Python version differs from the head's; \
            \(ExitCodes.alreadyRunning) a node or a pinned port is already in use.
            """)

    @Flag(name: .long, help: "Start the head (on the GPU host).") var head = false
    @Option(name: .long, help: ArgumentHelp("Join the head at this address.", valueName: "head")) var join: String?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "This host's LAN address to use (default: the one facing the LAN or the head).", valueName: "addr"))
    var bind: String?
    @Option(
        name: .long,
        help: ArgumentHelp("GPUs for Ray: all, a count (0: none), or indices like 0,1.", valueName: "all|N|0,1"))
    var gpus = "all"
    @Option(name: .long, help: ArgumentHelp("Logical CPUs for Ray (default: every core).", valueName: "n")) var cpus:
        Int?
    @Option(name: .long, help: ArgumentHelp("The head's GCS port; node ports are the next eight.", valueName: "port"))
    var port = LocalRay.Ports.defaultGCS
    @Option(name: .long, help: ArgumentHelp("The head's dashboard port.", valueName: "port"))
    var dashboardPort = LocalRay.Ports.defaultDashboard
    @Option(name: .long, help: ArgumentHelp("Serve's HTTP port on every node.", valueName: "port"))
    var servePort = LocalRay.Ports.defaultServe
    @Flag(
        name: .long,
        help:
            "No token authentication (the dashboard is then open to the LAN); required for a head on Ray older than 2.52."
    )
    var insecure = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Head: where to keep the cluster token (default ~/.raylan/cluster-token). Joining host: the head's token, copied here.",
            valueName: "file"))
    var tokenFile: String?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The Python (or venv) with Ray (default: RAYLAN_PYTHON, a .venv of the checkout, or ray on PATH).",
            valueName: "path"))
    var python: String?
    /// Joining host: the head's certificate (a head makes its own).
    @OptionGroup var certificate: TrustOptions
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    func validate() throws {
        guard head != (join != nil) else {
            throw ValidationError("Pass exactly one of --head (on the GPU host) or --join HEAD (on another host).")
        }
        _ = try GPUSelection(parsing: gpus)
        for (name, value) in [("--port", port), ("--dashboard-port", dashboardPort), ("--serve-port", servePort)]
        where !(1...65535).contains(value) {
            throw ValidationError("\(name) \(value) is not a TCP port; use 1–65535.")
        }
        if head, certificate.fingerprint != nil || certificate.trustOnFirstUse {
            throw ValidationError(
                "--fingerprint and --trust-on-first-use are for a joining host; a head makes its own certificate.")
        }
        if head, let tokenFile, insecure {
            throw ValidationError(
                "--insecure turns token authentication off; leave out --token-file \(tokenFile), or --insecure.")
        }
    }

    struct Output: Encodable {
        var role: String
        var nodeAddress: String
        var dashboardURL: String
        var fingerprint: CertificatePin?
        var rayVersion: String
        var pythonVersion: String
        var gpus: GPUSelection.Plan
        var tokenFile: String?
        var joinCommand: String
        var clientCommands: [String]
        var ports: [LocalRay.Ports.Opening]
        var subnet: String
        var ufw: [String]
        var firewalld: [String]
        var warnings: [String]
        var pid: Int32
    }

    func run() async throws {
        try await reportingErrors {
            var environment = ProcessInfo.processInfo.environment
            if let python { environment["RAYLAN_PYTHON"] = python }
            // A head keeps its token in --token-file (made when missing); a joining host reads the head's.
            let configuration = HostNodeConfiguration(
                role: join.map { .join(head: $0) } ?? .head,
                environment: try RayEnvironment.locateForNode(environment: environment),
                bind: bind, gpus: try GPUSelection(parsing: gpus), cpus: cpus, gcsPort: port,
                dashboardPort: dashboardPort,
                servePort: servePort, insecure: insecure, tokenFile: head ? tokenFile : nil,
                token: head ? nil : try AuthToken.resolve(tokenFile: tokenFile),
                serveGuard: Self.serveGuard(), fingerprint: try certificate.pin(),
                trust: certificate.trust)
            let node = try await HostNode.up(configuration) { Terminal.error($0) }
            if json {
                try Terminal.json(
                    Output(
                        role: node.role.rawValue, nodeAddress: node.nodeAddress, dashboardURL: node.dashboardURL,
                        fingerprint: node.fingerprint, rayVersion: node.versions.ray,
                        pythonVersion: node.versions.python, gpus: node.gpus,
                        tokenFile: node.tokenFile, joinCommand: node.joinCommand, clientCommands: node.clientCommands,
                        ports: node.ports.openings, subnet: node.subnet, ufw: node.ufwRules,
                        firewalld: node.firewalldRules,
                        warnings: node.warnings, pid: node.ray.pid))
            } else {
                Self.print(node)
            }
        }
    }

    /// The Serve proxy guard from RayLAN's cluster code, or nil with a warning on stderr when the code is not
    /// found (a `raylan` outside its checkout without RAYLAN_CLUSTER_DIR).
    static func serveGuard() -> String? {
        do {
            return try ClusterCode.locate().serveGuard
        } catch {
            Terminal.error(
                "Warning: Serve's proxy guard is not installed (\(error)); anonymous requests then reach the "
                    + "replicas, which refuse them without their key.")
            return nil
        }
    }

    static func print(_ node: HostNode) {
        let what = node.role == .head ? "head" : "node (joined \(node.headAddress))"
        Terminal.out(
            "Ray \(node.versions.ray) \(what) is up on \(node.nodeAddress) · Python \(node.versions.python) · \(node.gpus.summary)"
        )
        Terminal.out("")
        Terminal.out("Dashboard:  \(node.dashboardURL)")
        if let fingerprint = node.fingerprint {
            Terminal.out("TLS:        \(fingerprint) (clients pin it: --fingerprint; plain HTTP on loopback only)")
        }
        if let tokenFile = node.tokenFile {
            Terminal.out("Token:      \(tokenFile) (token authentication on; copy this file to each host and the Mac)")
        }
        for warning in node.warnings { Terminal.out("Warning:    \(warning)") }
        if node.role == .head {
            Terminal.out("")
            Terminal.out("On each other host of the cluster:")
            Terminal.out("  \(node.joinCommand)")
            Terminal.out("")
            Terminal.out("From the Mac:")
            node.clientCommands.forEach { Terminal.out("  \($0)") }
        }
        Terminal.out("")
        Terminal.out(
            "Ports (TCP) to open to \(node.subnet)\(node.role == .head ? "" : " (head-only ones are not used on this node)"):"
        )
        let rows = node.ports.openings.map { opening in
            [opening.firewalldPorts, opening.headOnly ? "head" : "every node", opening.purpose]
        }
        Terminal.table(["PORTS", "WHERE", "WHAT"], rows).forEach { Terminal.out("  " + $0) }
        Terminal.out("")
        Terminal.out("Firewall, ufw:")
        node.ufwRules.forEach { Terminal.out("  " + $0) }
        Terminal.out("Firewall, firewalld:")
        node.firewalldRules.forEach { Terminal.out("  " + $0) }
        Terminal.out("")
        Terminal.out("Stop this node with: raylan down")
    }
}
