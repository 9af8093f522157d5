import Crypto
import Foundation

/// Object detection over images that already sit on the cluster's disks (local disks or NFS/SMB mounts), with
/// Ray Data: the files are read where they are, an actor pool loads the model once per actor (on GPUs where the
/// cluster has them, with the detection service's backend, so results equal the service's), and
/// `detections.jsonl` (and `annotated/`) is written on the cluster's head node. Nothing crosses the LAN but the
/// results.
///
/// ```swift
/// let run = ClusterDatasetRun(paths: ["/mnt/nfs/photos"], deployment: DetectionDeployment(model: "yolo11s.pt"),
///                             output: URL(fileURLWithPath: "out"))
/// let summary = try await run.run(on: cluster) { if case .progress(let p) = $0 { print(p.done, "of", p.total) } }
/// ```
///
/// Plain local paths must exist on every node (Ray Data reads on any node): a path that some node lacks fails the
/// run at once with ``OnClusterError`` `pathNotOnEveryNode`, naming the path and the nodes.
public struct ClusterDatasetRun: Sendable {
    /// The run's end.
    public struct Summary: Sendable, Hashable, Codable {
        public var inputs: Int
        public var succeeded: Int
        public var failed: Int
        public var skipped: Int
        /// Seconds the run took on the cluster, the paths' check included.
        public var seconds: Double
        /// Images answered per second of detection (the actors' start and model load included, the check not).
        public var imagesPerSecond: Double
        /// Seconds from the start of detection to the first answers: the actors' start and model load.
        public var startupSeconds: Double?
        /// Images detected per node (by address).
        public var nodes: [String: Int]
        public var backend: String?
        public var backendReason: String?
        /// The results' folder on the head node.
        public var clusterOutput: String?
        /// The local folder the results were downloaded to.
        public var out: String?

        enum CodingKeys: String, CodingKey {
            case inputs, succeeded, failed, skipped, seconds, nodes, backend, out
            case imagesPerSecond = "images_per_s"
            case backendReason = "backend_reason"
            case startupSeconds = "startup_s"
            case clusterOutput = "cluster_output"
        }
    }

    /// What the run reports, in order.
    public enum Event: Sendable {
        /// The gateway is being deployed or the code uploaded: a line to show.
        case preparing(String)
        /// The paths are being looked up on every node.
        case checking
        /// One image's line (as in `detections.jsonl`).
        case image(JSONValue)
        /// How far detection is, as for streamed images: `total` and `done` leave out what a resumed run
        /// ``skipped``; the rate counts from the first answers (the detectors' start left out).
        case progress(DetectionRun.Progress)
        /// A result file downloaded to this machine.
        case downloaded(URL)
    }

    public var paths: [String]
    /// The model, its input size and backend (the detection service's settings; the service itself is not used).
    public var deployment: DetectionDeployment
    /// conf, iou, classes.
    public var options: DetectionOptions
    /// Write annotated images (on the cluster; downloaded with ``output``).
    public var annotate: Bool
    /// Skip images the cluster's `detections.jsonl` already answered.
    public var resume: Bool
    /// The results' folder on the head node. Default nil: `~/.raylan/on-cluster/<hash of the paths and model>` in
    /// the home of the user Ray runs as there (made with mode 0700; no shared `/tmp` folder another user could
    /// plant),
    /// the same for the same paths, so that `--resume` finds it.
    public var clusterOutput: String?
    /// Download the results here when done. Default nil.
    public var output: URL?
    /// Images per model call. Default 16.
    public var batchSize: Int = 16
    /// Most actors in the pool. Default nil: Ray Data's choice.
    public var actors: Int?
    /// GPUs per actor. Default nil: 1 where the cluster has GPUs, else none.
    public var gpusPerActor: Double?
    /// CPUs per actor. Default 1.
    public var cpusPerActor: Double = 1
    /// How long a poll waits on the cluster for new lines. Default 0.5 s.
    public var pollWait: Duration = .milliseconds(500)
    /// How long the session on the cluster waits for a call of this client before it stops itself (see
    /// ``VideoOptions/lease``), from ``VideoOptions/leaseRange``. Default 120 s.
    public var lease: Duration = .seconds(120)
    /// Serve's proxy port, should the gateway's deploy have to start Serve. Default 8000.
    public var httpPort: Int = ServeEndpoint.defaultPort

    public init(
        paths: [String], deployment: DetectionDeployment, options: DetectionOptions = DetectionOptions(),
        annotate: Bool = false, resume: Bool = false, clusterOutput: String? = nil, output: URL? = nil
    ) {
        self.paths = paths
        self.deployment = deployment
        self.options = options
        self.annotate = annotate
        self.resume = resume
        self.clusterOutput = clusterOutput
        self.output = output
    }

    /// The default ``clusterOutput`` for these paths and model.
    public var defaultClusterOutput: String {
        let key = (paths + [deployment.model]).joined(separator: "\n")
        let digest = SHA256.hash(data: Data(key.utf8)).prefix(6).hexString
        return "~/.raylan/on-cluster/\(digest)"
    }

    /// Runs to the end, handing each event to `events`; Ctrl-C (cancelling the task) stops the cluster side.
    /// - Throws: ``OnClusterError`` (`pathNotOnEveryNode`, `noInputs`, …), ``GatewayError``, ``ClusterError``,
    ///   `CancellationError`.
    public func run(on cluster: RayCluster, events: @Sendable (Event) -> Void = { _ in }) async throws -> Summary {
        guard VideoOptions.leaseRange.contains(lease) else {
            throw OnClusterError(.invalidSource, "The lease must be from 5 to 86400 seconds, not \(lease)")
        }
        for path in paths where !path.hasPrefix("/") {
            throw OnClusterError(
                .invalidSource, "'\(path)' is not an absolute path",
                remedy: "With --on-cluster, give paths as the cluster's nodes see them, e.g. /mnt/data/photos.")
        }
        let (gateway, model) = try await OnClusterWork.gateway(
            on: cluster, model: deployment.model, httpPort: httpPort
        ) {
            events(.preparing($0))
        }
        let folder = clusterOutput ?? defaultClusterOutput
        let spec = DatasetSessionSpec(
            paths: paths, model: model ?? deployment.model, outDir: folder, backend: deployment.backend.rawValue,
            imgsz: deployment.imageSize, conf: options.confidence, iou: options.iou, classes: options.classes,
            annotate: annotate, resume: resume, batchSize: batchSize, actors: actors, gpusPerActor: gpusPerActor,
            cpusPerActor: cpusPerActor, leaseS: lease.seconds)
        // The session only drives Ray Data; the actor pool reserves what detection needs.
        let session = try await ClusterSession.create(
            "raylan_detect.dataset:DatasetSession", keywords: try spec.keywords(), on: gateway, cpus: 0)
        var finished = false
        do {
            _ = try await session.start()
            events(.checking)
            var cursor = 0
            var summary: Summary?
            var lastProgress: JSONValue?
            let started = ContinuousClock.now
            while true {
                let poll = try await session.poll(cursor: cursor, wait: pollWait)
                cursor = poll.cursor
                for item in poll.items {
                    switch item["type"]?.stringValue {
                    case "image": events(.image(item))
                    case "summary":
                        summary = try JSONDecoder().decode(Summary.self, from: JSONEncoder().encode(item))
                    default: break
                    }
                }
                if let progress = poll.progress, progress != lastProgress, let total = progress["total"]?.doubleValue {
                    lastProgress = progress
                    let count = { (key: String) in Int(progress[key]?.doubleValue ?? 0) }
                    let skipped = count("skipped")
                    events(
                        .progress(
                            DetectionRun.Progress(
                                total: Int(total) - skipped, done: count("done") - skipped, failed: count("failed"),
                                skipped: skipped, seconds: (ContinuousClock.now - started).seconds,
                                measuredRate: progress["images_per_s"]?.doubleValue)))
                }
                if poll.state.isTerminal && poll.items.isEmpty {
                    if let error = poll.error { throw error.error }
                    break
                }
                try Task.checkCancellation()
            }
            finished = true
            guard var result = summary else {
                throw OnClusterError(
                    .sessionFailed, "The run on the cluster ended without its summary",
                    remedy: "It was stopped from elsewhere, or its actor died: run it again with --resume.")
            }
            result.clusterOutput = folder
            if let output {
                // Each name is the cluster's: download(_:into:) takes only a plain one inside `output`.
                for file in try await session.outputs() {
                    if file.name == LocalJournal.name {
                        _ = try DetectionJournal.moveAside(output.appendingPathComponent(LocalJournal.name))
                    }
                    events(.downloaded(try await session.download(file, into: output)))
                }
                result.out = output.path
            }
            await session.close(stopping: false)
            return result
        } catch {
            await session.close(stopping: !finished)
            throw error
        }
    }
}
