import ArgumentParser
import Foundation
import RayLAN

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Deploy, inspect and remove the YOLO detection service (Ray Serve).",
        subcommands: [ServeDeployCommand.self, ServeStatusCommand.self, ServeDeleteCommand.self])
}

/// `--replicas N|auto`.
enum ReplicaCount: ExpressibleByArgument, Equatable {
    case fixed(Int)
    case auto

    init?(argument: String) {
        if argument == "auto" {
            self = .auto
        } else if let count = Int(argument), count >= 1 {
            self = .fixed(count)
        } else {
            return nil
        }
    }

    var defaultValueDescription: String {
        switch self {
        case .fixed(let count): String(count)
        case .auto: "auto"
        }
    }

    var replicas: DetectionDeployment.Replicas {
        switch self {
        case .fixed(let count): .fixed(count)
        case .auto: .auto(min: 1, max: 4)
        }
    }
}

/// The knobs `serve deploy`, `detect` (when it deploys) and `bench` share.
struct DeploymentOptions: ParsableArguments {
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "GPUs per replica, fractions allowed (default: 1 where a node has a GPU, else 0: replicas on CPUs).",
            valueName: "f"))
    var gpusPerReplica: Double?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Replicas: a number, or 'auto' for Serve's autoscaling (1 to 4). Default: fitted to the cluster, one "
                + "per GPU, else one per CPU (at most 4) holding a quarter of the CPUs together.",
            valueName: "n|auto"))
    var replicas: ReplicaCount?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Most images per dynamic batch (default: 16 on GPUs, 8 on CPUs).", valueName: "n"))
    var maxBatch: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Requests that may wait for a replica; more get 503 at once (default: --max-batch).", valueName: "n"))
    var maxQueuedRequests: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("The most replicas on one node (default: Serve spreads them).", valueName: "n"))
    var maxReplicasPerNode: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Longest wait for a batch to fill, in ms (default 10).", valueName: "ms"))
    var batchWaitMs: Double?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Model input size (default: the model's own, else 640).", valueName: "px"))
    var imgsz: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "What runs the model: tensor (batched on the device), ultralytics (its predictor), or auto (tensor "
                + "where it matches ultralytics at start-up).",
            valueName: "auto|tensor|ultralytics"))
    var backend: DetectionDeployment.Backend = .auto

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Serve's HTTP port when Serve is not running yet (default: 8000; a free one for the local Ray).",
            valueName: "port"))
    var port: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A file with the service key to deploy with and send (default: a random key kept in the deployment, "
                + "read over the dashboard).",
            valueName: "file"))
    var keyFile: String?

    @Flag(
        name: .long,
        help: "Deploy without a service key: anyone who reaches Serve's port can use the service (not recommended).")
    var `public` = false

    func validate() throws {
        if keyFile != nil && `public` { throw ValidationError("Give --key-file or --public, not both.") }
        if let keyFile { _ = try ServiceKey.read(file: keyFile) }
        try OptionCheck.amount(gpusPerReplica, "--gpus-per-replica")
        try OptionCheck.atLeast(maxBatch, 1, "--max-batch")
        try OptionCheck.atLeast(maxQueuedRequests, 0, "--max-queued-requests")
        try OptionCheck.atLeast(maxReplicasPerNode, 1, "--max-replicas-per-node")
        try OptionCheck.amount(batchWaitMs, "--batch-wait-ms")
        try OptionCheck.atLeast(imgsz, 32, "--imgsz")
        try OptionCheck.within(port, 1...65535, "--port")
    }

    /// `--key-file`'s key, when given.
    func key() throws -> ServiceKey? { try keyFile.map { try ServiceKey.read(file: $0) } }

    /// The deployment for `model`: placed to fit the cluster (``RayCluster/defaultPlacement(gpusPerReplica:)``),
    /// then each option given taking its place.
    func make(model: String, name: String?, on cluster: RayCluster) async throws -> DetectionDeployment {
        let placement = await cluster.defaultPlacement(gpusPerReplica: gpusPerReplica)
        var deployment = DetectionDeployment(model: model, name: name, imageSize: imgsz).placed(placement)
        if let gpusPerReplica { deployment.gpusPerReplica = gpusPerReplica }
        if let replicas { deployment.replicas = replicas.replicas }
        if let maxBatch { deployment.maxBatch = maxBatch }
        if let batchWaitMs { deployment.batchWaitMilliseconds = batchWaitMs }
        deployment.maxQueuedRequests = maxQueuedRequests
        deployment.maxReplicasPerNode = maxReplicasPerNode
        deployment.backend = backend
        if let key = try key() {
            deployment.access = .givenKey(key)
        } else if `public` {
            deployment.access = .open
        }
        return deployment
    }

    /// The Serve port to deploy with: `--port`, else the embedded cluster's reserved port, else Serve's default.
    func servePort(for connection: Connection) -> Int { port ?? connection.defaultServePort }

    /// What a deployment's progress prints on stderr.
    static func announce(_ deployment: DetectionDeployment) {
        Terminal.error(
            "Deploying '\(deployment.name)' (model \(deployment.model), \(deployment.placementDescription))…")
        if deployment.access == .open {
            Terminal.error(
                "Warning: '\(deployment.name)' is deployed with --public: anyone who reaches Serve's port can use it "
                    + "(and its GPU). Deploy without --public to require the service key.")
        }
    }

    /// Deploys `model` (see ``make(model:name:on:)``) and says what happens.
    func deploy(model: String, name: String?, on connection: Connection) async throws -> ServeStatus.Application {
        let deployment = try await make(model: model, name: name, on: connection.cluster)
        Self.announce(deployment)
        return try await connection.cluster.deploy(
            deployment, httpPort: servePort(for: connection), progress: { Terminal.error("  \($0)") })
    }

    /// The shipped demo model, `models/shapes/shapes-yolo11n.pt` next to the cluster code.
    static func defaultModel() throws -> String {
        let code = try ClusterCode.locate()
        return code.directory.deletingLastPathComponent().appendingPathComponent("models/shapes/shapes-yolo11n.pt").path
    }
}

struct ServeDeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Deploy the detection service for one or more models and wait until it runs.",
        discussion: """
            Each model becomes a Serve application (its name: the model's file name) at /raylan/<name> on \
            Serve's HTTP port; other applications keep running. A model is a file here (uploaded with the \
            service, under Ray's 100 MiB cap), an absolute path on the cluster, or a name Ultralytics \
            downloads on the cluster (e.g. yolo11s.pt). Default: the shipped demo model shapes-yolo11n.

            Exit codes: \(ExitCodes.summary)
            """)

    @OptionGroup var cluster: ClusterOptions
    @Option(name: .long, help: ArgumentHelp("A model (repeatable).", valueName: "m")) var model: [String] = []
    @Option(name: .long, help: ArgumentHelp("The application name (one model only).", valueName: "n")) var name: String?
    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if name != nil && model.count > 1 { throw ValidationError("--name goes with one --model only.") }
    }

    func run() async throws {
        try await reportingErrors {
            let models = model.isEmpty ? [try DeploymentOptions.defaultModel()] : model
            try await Connection.with(cluster) { (connection: Connection) in
                var deployed: [ServeStatus.Application] = []
                for model in models {
                    deployed.append(try await deployment.deploy(model: model, name: name, on: connection))
                }
                if output.json {
                    let token = connection.cluster.configuration.token
                    try Terminal.json(deployed.map { $0.printable(showingKeys: false, token: token) })
                } else {
                    let status = try await connection.cluster.serveStatus()
                    for app in deployed {
                        let endpoint = try connection.cluster.serveEndpoint(for: app.name, in: status)
                        Terminal.out("\(app.name) RUNNING at \(endpoint)")
                    }
                }
            }
        }
    }
}

struct ServeStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show Serve's applications, deployments and replicas (with errors).",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var output: OutputOptions
    @Flag(name: .long, help: "With --json: print each service's key (as api_key) where this client has it.")
    var showKeys = false

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                let status = try await cluster.serveStatus()
                if output.json {
                    try Terminal.json(status.printable(showingKeys: showKeys, token: cluster.configuration.token))
                    return
                }
                guard status.isRunning else { Terminal.out("Serve is not running (no applications)."); return }
                Terminal.out("Serve HTTP port \(status.httpOptions?.port.map(String.init) ?? "?")")
                for app in status.applications.values.sorted(by: { $0.name < $1.name }) {
                    Terminal.out("\(app.name)  \(app.status)  \(app.routePrefix ?? "")")
                    if let message = app.message, !message.isEmpty, app.status != .running {
                        message.split(separator: "\n").forEach { Terminal.out("    " + $0) }
                    }
                    for deployment in (app.deployments ?? [:]).values.sorted(by: { $0.name < $1.name }) {
                        Terminal.out(
                            "  \(deployment.name)  \(deployment.status?.rawValue ?? "?")  replicas \(deployment.replicas?.count ?? 0)/\(deployment.targetNumReplicas ?? 0)"
                        )
                        for replica in deployment.replicas ?? [] {
                            Terminal.out(
                                "    \(replica.replicaID ?? "?")  \(replica.state ?? "?")  \(replica.nodeIP ?? "?")  pid \(replica.pid.map(String.init) ?? "?")"
                            )
                        }
                    }
                }
            }
        }
    }
}

struct ServeDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Remove a detection service; the other applications keep running.",
        discussion: "Exit codes: \(ExitCodes.summary)")

    @OptionGroup var cluster: ClusterOptions
    @Option(name: .long, help: ArgumentHelp("The application (the demo model's by default).", valueName: "n"))
    var name = "shapes-yolo11n"

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                if try await cluster.deleteServeApplication(name) {
                    Terminal.out("Deleted the Serve application '\(name)'.")
                } else {
                    Terminal.out("No Serve application '\(name)'.")
                }
            }
        }
    }
}

extension DetectionDeployment.Backend: ExpressibleByArgument {}
