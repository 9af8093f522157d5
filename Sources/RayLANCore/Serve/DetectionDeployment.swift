import Crypto
import Foundation

/// A detection service to deploy: one model, as one Ray Serve application running `raylan_detect`.
public struct DetectionDeployment: Sendable, Hashable {
    /// Who may use the service.
    public typealias Access = ServiceAccess

    /// What runs the model in each replica.
    public enum Backend: String, Sendable, Hashable, CaseIterable {
        /// The batched tensor backend where, at start-up, it gives the Ultralytics backend's detections on
        /// generated images; else the Ultralytics backend. `GET /models` tells which, and why.
        case auto
        /// The batched tensor backend: a whole batch decoded (on a GPU through nvjpeg), letterboxed,
        /// inferred and suppressed as tensors on the model's device.
        case tensor
        /// Ultralytics' predictor, image by image around one forward pass.
        case ultralytics
    }

    /// Replicas: a fixed number, or Serve's autoscaling between bounds.
    public enum Replicas: Sendable, Hashable {
        case fixed(Int)
        case auto(min: Int, max: Int)
    }

    /// The model: a file on this machine (uploaded with the service), a path that exists on the cluster
    /// (absolute), or a name Ultralytics downloads on the cluster (`yolo11s.pt`).
    public var model: String
    /// The Serve application name. Default: derived from the model's file name.
    public var name: String
    /// GPUs per replica (fractions allowed; 0 on a CPU-only cluster). Default 0.
    public var gpusPerReplica: Double
    /// CPUs per replica. Default 1.
    public var cpusPerReplica: Double
    /// Default `.fixed(1)`.
    public var replicas: Replicas
    /// Most images in one dynamic batch. Default 8.
    public var maxBatch: Int
    /// Longest wait for a batch to fill, in milliseconds. Default 10.
    public var batchWaitMilliseconds: Double
    /// Model input size; nil reads it from the model (its training size), else 640. Default nil.
    public var imageSize: Int?
    /// Largest accepted image in pixels (width × height). Default 50,000,000.
    public var maxPixels: Int
    /// Who may use the service. Default ``Access/key``.
    public var access: Access = .key
    /// Requests each replica works on at once. Default nil: twice the largest batch, at least 16 (1 image a
    /// request fills a batch; several images a request fill it sooner).
    public var maxOngoingRequests: Int?
    /// Requests that may wait for a replica beyond those; more are shed at once with 503 (the client backs
    /// off and sends them again) instead of queueing for seconds. Default nil: the largest batch.
    public var maxQueuedRequests: Int?
    /// The most replicas on one node. Default nil: Serve's choice (it spreads them where it can).
    public var maxReplicasPerNode: Int?
    /// The naive form (one image per request, no dynamic batching), for benchmarks. Default false.
    public var isNaive: Bool = false
    /// What runs the model. Default ``Backend/auto``. The naive form always runs Ultralytics' predictor.
    public var backend: Backend = .auto

    public init(
        model: String, name: String? = nil, gpusPerReplica: Double = 0, cpusPerReplica: Double = 1,
        replicas: Replicas = .fixed(1), maxBatch: Int = 8, batchWaitMilliseconds: Double = 10, imageSize: Int? = nil,
        maxPixels: Int = 50_000_000
    ) {
        self.model = model
        self.name = name ?? Self.defaultName(for: model)
        self.gpusPerReplica = gpusPerReplica
        self.cpusPerReplica = cpusPerReplica
        self.replicas = replicas
        self.maxBatch = maxBatch
        self.batchWaitMilliseconds = batchWaitMilliseconds
        self.imageSize = imageSize
        self.maxPixels = maxPixels
    }

    /// The application name for a model: its file name without extension, lower-cased, [a-z0-9-] only.
    public static func defaultName(for model: String) -> String {
        let stem = ((model as NSString).lastPathComponent as NSString).deletingPathExtension.lowercased()
        let cleaned = String(stem.map { $0.isLetter || $0.isNumber ? $0 : "-" })
        return cleaned.isEmpty ? "detector" : cleaned
    }

    /// The HTTP route of the application on the Serve proxy.
    public var routePrefix: String { "/raylan/\(name)" }

    /// Whether `model` names a file on this machine (it is uploaded with the service).
    public var isLocalFile: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// Checks the values without touching the network.
    public func validate() throws {
        func fail(_ message: String) -> ServeError { ServeError(.invalidModel, message) }
        guard !model.isEmpty else {
            throw fail("The model is empty. Pass a file, a cluster path or a name like yolo11s.pt.")
        }
        guard gpusPerReplica >= 0, gpusPerReplica.isFinite else { throw fail("GPUs per replica must be 0 or more.") }
        guard maxBatch >= 1 else { throw fail("The largest batch must be 1 or more.") }
        guard batchWaitMilliseconds >= 0 else { throw fail("The batch wait must be 0 ms or more.") }
        switch replicas {
        case .fixed(let count) where count < 1: throw fail("Replicas must be 1 or more.")
        case .auto(let low, let high) where low < 1 || high < low: throw fail("Autoscaling needs 1 ≤ min ≤ max.")
        default: break
        }
        if !isLocalFile
            && (model.hasPrefix("./") || model.hasPrefix("../") || model.contains("/") && !model.hasPrefix("/"))
        {
            throw fail("The model file '\(model)' does not exist on this machine. Check the path.")
        }
    }

    /// The model's identity (see ``ModelIdentity``): a local file is hashed (SHA-256, read in 1 MiB pieces).
    /// - Throws: ``ServeError`` (`invalidModel`) when a local model file cannot be read.
    public func modelIdentity() throws -> ModelIdentity {
        let backend = (model as NSString).pathExtension.lowercased()
        guard isLocalFile else { return ModelIdentity(id: model, backend: backend) }
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: model))
            defer { try? handle.close() }
            var hash = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(data: chunk) }
            let hex = hash.finalize().hexString
            return ModelIdentity(id: "sha256:" + hex, backend: backend)
        } catch {
            throw ServeError(.invalidModel, "The model file '\(model)' cannot be read (\(error))")
        }
    }

    /// The Serve application config (`ServeApplicationSchema`) for a package at `workingDirectoryURI`, with the
    /// model's `identity` in `runtime_env.env_vars` (which Serve keeps in `deployed_app_config`).
    func applicationConfig(
        workingDirectoryURI: String, modelArgument: String, keyArguments: [String: JSONValue] = [:],
        identity: ModelIdentity? = nil
    ) -> JSONValue {
        var deployment: [String: JSONValue] = [
            "name": .string(isNaive ? "NaiveDetector" : "Detector"),
            // Let batches fill: at least twice the batch in flight per replica (Serve's default, 5, for the naive form).
            "max_ongoing_requests": .number(Double(maxOngoingRequests ?? (isNaive ? 5 : max(2 * maxBatch, 16)))),
            // Shed load: a request beyond these gets 503 at once rather than a place in a queue of seconds.
            "max_queued_requests": .number(Double(maxQueuedRequests ?? maxBatch)),
            "ray_actor_options": .object(["num_cpus": .number(cpusPerReplica), "num_gpus": .number(gpusPerReplica)]),
            "health_check_period_s": .number(10),
            "health_check_timeout_s": .number(60),
        ]
        if let maxReplicasPerNode { deployment["max_replicas_per_node"] = .number(Double(maxReplicasPerNode)) }
        switch replicas {
        case .fixed(let count):
            deployment["num_replicas"] = .number(Double(count))
        case .auto(let low, let high):
            deployment["autoscaling_config"] = .object([
                "min_replicas": .number(Double(low)), "max_replicas": .number(Double(high)),
                "target_ongoing_requests": .number(Double(maxBatch)),
            ])
        }
        var args: [String: JSONValue] = ["model": .string(modelArgument), "max_pixels": .number(Double(maxPixels))]
        if !isNaive {
            args["max_batch"] = .number(Double(maxBatch))
            args["batch_wait_ms"] = .number(batchWaitMilliseconds)
            args["backend"] = .string(backend.rawValue)
        }
        if let imageSize { args["imgsz"] = .number(Double(imageSize)) }
        args.merge(keyArguments) { _, key in key }
        var runtimeEnvironment: [String: JSONValue] = ["working_dir": .string(workingDirectoryURI)]
        if let identity {
            runtimeEnvironment["env_vars"] = .object([
                ModelIdentity.idVariable: .string(identity.id),
                ModelIdentity.backendVariable: .string(identity.backend),
            ])
        }
        return .object([
            "name": .string(name),
            "route_prefix": .string(routePrefix),
            "import_path": .string(isNaive ? "raylan_detect.app:build_naive" : "raylan_detect.app:build"),
            "runtime_env": .object(runtimeEnvironment),
            "args": .object(args),
            "deployments": .array([.object(deployment)]),
        ])
    }
}

extension DetectionDeployment {
    /// Replicas, what each holds and the largest batch, when nothing is asked for: fitted to the cluster's alive
    /// nodes by ``fitting(_:gpusPerReplica:)`` (``RayCluster/defaultPlacement(gpusPerReplica:)`` reads them).
    public struct Placement: Sendable, Hashable, CustomStringConvertible {
        public var replicas: Int
        public var gpusPerReplica: Double
        public var cpusPerReplica: Double
        public var maxBatch: Int

        public init(replicas: Int, gpusPerReplica: Double, cpusPerReplica: Double, maxBatch: Int) {
            self.replicas = replicas
            self.gpusPerReplica = gpusPerReplica
            self.cpusPerReplica = cpusPerReplica
            self.maxBatch = maxBatch
        }

        /// The most replicas the rule places: on GPUs, one per GPU up to this; on CPUs, up to ``maxCPUReplicas``.
        public static let maxGPUReplicas = 8
        public static let maxCPUReplicas = 4
        /// The largest batch of a fitted placement: on GPUs 16 (a GPU's forward pass gains from larger batches);
        /// on CPUs 8 (2 replicas × batch 8 and × 16 measured alike on a 2-core host, and Ultralytics' own loop is
        /// faster at 8 there; see `bench/README.md`).
        public static let gpuMaxBatch = 16
        public static let cpuMaxBatch = 8

        /// The rule, from the alive nodes' totals rather than what is free at the moment, so that the same cluster
        /// always gives the same deployment (a running service is kept, not redeployed):
        /// - GPUs (where a node has one, unless `gpusPerReplica` is 0): one replica per whole GPU (at most
        ///   ``maxGPUReplicas``), with `gpusPerReplica` (default 1) and 1 CPU each;
        /// - CPUs only: one replica per CPU (at most ``maxCPUReplicas``), together holding a quarter of the CPUs
        ///   (at least a quarter CPU each), so that the rest stays free for `--on-cluster` runs (a detector and a
        ///   read beside it on each node) and sessions. A replica holding less than 2 CPUs computes with one thread
        ///   (Ray sets `OMP_NUM_THREADS` to its whole CPUs), so the replicas together use the cores one thread
        ///   each: what a replica holds is Ray's bookkeeping, not what it computes with;
        /// - batches of up to ``gpuMaxBatch`` images on GPUs, ``cpuMaxBatch`` on CPUs.
        /// With no alive node (a state that could not be read): one replica, no GPU, 1 CPU.
        public static func fitting(_ nodes: [NodeInfo], gpusPerReplica: Double? = nil) -> Placement {
            let alive = nodes.filter(\.isAlive)
            let gpus = alive.reduce(0) { $0 + Int($1.gpus.total.rounded(.down)) }
            if gpus >= 1 && gpusPerReplica != 0 {
                let each = gpusPerReplica ?? 1
                let replicas = min(max(Int((Double(gpus) / each).rounded(.down)), 1), maxGPUReplicas)
                return Placement(replicas: replicas, gpusPerReplica: each, cpusPerReplica: 1, maxBatch: gpuMaxBatch)
            }
            let cpus = alive.reduce(0) { $0 + $1.cpus.total }
            guard cpus > 0 else {
                return Placement(replicas: 1, gpusPerReplica: 0, cpusPerReplica: 1, maxBatch: cpuMaxBatch)
            }
            let replicas = min(max(Int(cpus.rounded(.down)), 1), maxCPUReplicas)
            let quarters = (cpus / 4 / Double(replicas) * 4).rounded(.down)
            return Placement(
                replicas: replicas, gpusPerReplica: 0, cpusPerReplica: max(quarters, 1) / 4, maxBatch: cpuMaxBatch)
        }

        /// E.g. `2 replicas × 0.5 CPU, batches up to 8` or `1 replica × 1 GPU + 1 CPU, batches up to 16`.
        public var description: String {
            DetectionDeployment.describe(
                .fixed(replicas), gpusPerReplica: gpusPerReplica, cpusPerReplica: cpusPerReplica, maxBatch: maxBatch)
        }
    }

    /// Its replicas, what each holds and the largest batch, as ``Placement/description`` says them (with
    /// autoscaling: `1–4 replicas (autoscaling) × …`).
    public var placementDescription: String {
        Self.describe(replicas, gpusPerReplica: gpusPerReplica, cpusPerReplica: cpusPerReplica, maxBatch: maxBatch)
    }

    static func describe(_ replicas: Replicas, gpusPerReplica: Double, cpusPerReplica: Double, maxBatch: Int)
        -> String
    {
        let each =
            gpusPerReplica > 0
            ? "\(Formatting.number(gpusPerReplica)) GPU + \(Formatting.number(cpusPerReplica)) CPU"
            : "\(Formatting.number(cpusPerReplica)) CPU"
        let count =
            switch replicas {
            case .fixed(let count): "\(count) replica\(count == 1 ? "" : "s")"
            case .auto(let low, let high): "\(low)–\(high) replicas (autoscaling)"
            }
        return "\(count) × \(each), batches up to \(maxBatch)"
    }

    /// This deployment with `placement`'s replicas, GPUs, CPUs and largest batch.
    public func placed(_ placement: Placement) -> DetectionDeployment {
        var placed = self
        placed.replicas = .fixed(placement.replicas)
        placed.gpusPerReplica = placement.gpusPerReplica
        placed.cpusPerReplica = placement.cpusPerReplica
        placed.maxBatch = placement.maxBatch
        return placed
    }
}

extension DetectionDeployment {
    /// Which model a service runs, whatever its application's name: what `detect` compares before reusing a
    /// running service, and what each line of `detections.jsonl` records.
    ///
    /// Recorded in the application's `runtime_env.env_vars` (`RAYLAN_MODEL_ID`, `RAYLAN_MODEL_BACKEND`), which
    /// Serve echoes in `deployed_app_config` and the service itself ignores.
    public struct ModelIdentity: Sendable, Hashable, Codable, CustomStringConvertible {
        /// `sha256:<hex>` of a model file on this machine; else the model as given (a path on the cluster or a
        /// name Ultralytics downloads, e.g. `yolo11s.pt`).
        public var id: String
        /// The backend: the model's file extension, lower-cased (`pt`, `onnx`); empty when it has none.
        public var backend: String

        public init(id: String, backend: String) {
            self.id = id
            self.backend = backend
        }

        /// E.g. `sha256:3f2a… (.pt)`.
        public var description: String { "\(id) (\(backend.isEmpty ? "no extension" : "." + backend))" }

        static let idVariable = "RAYLAN_MODEL_ID"
        static let backendVariable = "RAYLAN_MODEL_BACKEND"
    }
}

extension ServeStatus.Application {
    /// The model RayLAN recorded when it deployed this application; nil for one deployed otherwise (or by a
    /// RayLAN from before identities were recorded).
    public var modelIdentity: DetectionDeployment.ModelIdentity? {
        let variables = deployedAppConfig?["runtime_env"]?["env_vars"]
        typealias Identity = DetectionDeployment.ModelIdentity
        guard let id = variables?[Identity.idVariable]?.stringValue,
            let backend = variables?[Identity.backendVariable]?.stringValue
        else { return nil }
        return Identity(id: id, backend: backend)
    }

    /// The model input size the application was deployed with (`args.imgsz`); nil: the model's own.
    package var deployedImageSize: Int? {
        deployedAppConfig?["args"]?["imgsz"]?.doubleValue.map { Int($0) }
    }
}
