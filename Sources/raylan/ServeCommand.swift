import ArgumentParser
import Foundation
import RayLAN

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Deploy, inspect and remove the YOLO detection service (Ray Serve).",
        subcommands: [ServeDeployCommand.self, ServeStatusCommand.self, ServeDeleteCommand.self])
}

/// The knobs `serve deploy` and `detect` (when it deploys) share.
struct DeploymentOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("GPUs per replica, fractions allowed (default: 1 where a node has a GPU, else 0).", valueName: "f"))
    var gpusPerReplica: String?

    @Option(name: .long, help: ArgumentHelp("Replicas: a number, or 'auto' for Serve's autoscaling (1 to 4). Default 1.", valueName: "n|auto"))
    var replicas = "1"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Most images per dynamic batch. Default 8.", valueName: "n"))
    var maxBatch = "8"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Longest wait for a batch to fill, in ms. Default 10.", valueName: "ms"))
    var batchWaitMs = "10"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Model input size (default: the model's own, else 640).", valueName: "px"))
    var imgsz: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Serve's HTTP port when Serve is not running yet (default 8000; a free one for the local Ray).", valueName: "port"))
    var port: String?

    func validate() throws { _ = try make(model: "x.pt", name: nil, gpus: 0) }

    func make(model: String, name: String?, gpus defaultGPUs: Double) throws -> DetectionDeployment {
        func number(_ text: String, _ flag: String, minimum: Double) throws -> Double {
            guard let value = Double(text), value >= minimum, value.isFinite else {
                throw ValidationError("\(flag) must be a number of \(Terminal.number(minimum)) or more, not '\(text)'.")
            }
            return value
        }
        let replicas: DetectionDeployment.Replicas
        if self.replicas == "auto" {
            replicas = .auto(min: 1, max: 4)
        } else {
            guard let count = Int(self.replicas), count >= 1 else {
                throw ValidationError("--replicas must be a whole number of 1 or more, or 'auto', not '\(self.replicas)'.")
            }
            replicas = .fixed(count)
        }
        if let port { _ = try number(port, "--port", minimum: 1) }
        return DetectionDeployment(
            model: model, name: name, gpusPerReplica: try gpusPerReplica.map { try number($0, "--gpus-per-replica", minimum: 0) } ?? defaultGPUs,
            replicas: replicas, maxBatch: Int(try number(maxBatch, "--max-batch", minimum: 1)),
            batchWaitMilliseconds: try number(batchWaitMs, "--batch-wait-ms", minimum: 0),
            imageSize: try imgsz.map { Int(try number($0, "--imgsz", minimum: 32)) })
    }

    /// The deployment for `model`, GPUs per replica defaulting to 1 where an alive node has a GPU, else 0.
    func make(model: String, name: String?, on cluster: RayCluster) async throws -> DetectionDeployment {
        let hasGPU = (try? await cluster.state().nodes.contains { $0.isAlive && $0.gpus.total >= 1 }) ?? false
        return try make(model: model, name: name, gpus: hasGPU ? 1 : 0)
    }

    /// Deploys `model` (see ``make(model:name:on:)``) and says what happens.
    func deploy(model: String, name: String?, on connection: Connection) async throws -> ServeStatus.Application {
        let cluster = connection.cluster
        let deployment = try await make(model: model, name: name, on: cluster)
        Terminal.error(
            "Deploying '\(deployment.name)' (model \(model), \(Terminal.number(deployment.gpusPerReplica)) GPU per replica, "
                + "batches up to \(deployment.maxBatch))…")
        let port = port.flatMap(Int.init) ?? connection.defaultServePort
        return try await cluster.deploy(deployment, httpPort: port, progress: { Terminal.error("  \($0)") })
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
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

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
                if json { try Terminal.json(deployed) } else {
                    let port = try await connection.cluster.serveStatus().httpOptions?.port ?? 8000
                    for app in deployed {
                        Terminal.out("\(app.name) RUNNING at http://\(connection.cluster.address.host):\(port)\(app.routePrefix ?? "")")
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
    @Flag(name: .long, help: "Print JSON for scripts.") var json = false

    func run() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { cluster in
                let status = try await cluster.serveStatus()
                if json { try Terminal.json(status); return }
                guard status.isRunning else { Terminal.out("Serve is not running (no applications)."); return }
                Terminal.out("Serve HTTP port \(status.httpOptions?.port.map(String.init) ?? "?")")
                for app in status.applications.values.sorted(by: { $0.name < $1.name }) {
                    Terminal.out("\(app.name)  \(app.status)  \(app.routePrefix ?? "")")
                    if let message = app.message, !message.isEmpty, app.status != .running {
                        message.split(separator: "\n").forEach { Terminal.out("    " + $0) }
                    }
                    for deployment in (app.deployments ?? [:]).values.sorted(by: { $0.name < $1.name }) {
                        Terminal.out("  \(deployment.name)  \(deployment.status?.rawValue ?? "?")  replicas \(deployment.replicas?.count ?? 0)/\(deployment.targetNumReplicas ?? 0)")
                        for replica in deployment.replicas ?? [] {
                            Terminal.out("    \(replica.replicaID ?? "?")  \(replica.state ?? "?")  \(replica.nodeIP ?? "?")  pid \(replica.pid.map(String.init) ?? "?")")
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
    @Option(name: .long, help: ArgumentHelp("The application (default: the demo model's, shapes-yolo11n).", valueName: "n"))
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
