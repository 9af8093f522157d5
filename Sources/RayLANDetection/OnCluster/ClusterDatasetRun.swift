import Crypto
import Foundation
import RayLANCore
import RayLANGateway

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
    /// Files made on this machine from the downloaded results, in ``output``: ``DetectionRun/Outputs/coco``
    /// (`annotations.json`), ``DetectionRun/Outputs/yolo`` (`labels/`), ``DetectionRun/Outputs/report``
    /// (`report.html`, showing the annotated images with ``annotate``), as a streamed run makes them. They need
    /// ``output``. Default none.
    public var exports: DetectionOutputs = []
    /// How the detectors are sized, and how long the work waits for this client.
    public var settings = Settings()
    /// How long a poll waits on the cluster for new lines. Default 0.5 s.
    public var pollWait: Duration = .milliseconds(500)
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

    /// How a run's detectors on the cluster are sized, and how long its work there waits for this client: what
    /// only images on the cluster have (``DetectionRun/Source/onCluster(_:_:)``).
    public struct Settings: Sendable, Hashable {
        /// Images per model call. Default 16.
        public var batchSize: Int
        /// Most actors in the pool. Default nil: Ray Data's choice.
        public var actors: Int?
        /// GPUs per actor. Default nil: 1 where the cluster has GPUs, else none.
        public var gpusPerActor: Double?
        /// CPUs per actor. Default nil: 1 where that many are free beside a read task (0.25 CPU), else what is
        /// free beside one, at least 0.25 (on the embedded 2-CPU cluster whose detection service holds a CPU:
        /// 0.75), so that the plain command runs there. The summary says what was used.
        public var cpusPerActor: Double?
        /// How long the session on the cluster waits for a call of this client before it stops itself (see
        /// ``VideoOptions/lease``), from ``VideoOptions/leaseRange``. Default 120 s.
        public var lease: Duration
        /// Download the results into ``ClusterDatasetRun/output`` (``DetectionRun/output``) when done. Default
        /// true; false leaves them on the cluster only (COCO, YOLO and report files need them here).
        public var download: Bool

        public init(
            batchSize: Int = 16, actors: Int? = nil, gpusPerActor: Double? = nil, cpusPerActor: Double? = nil,
            lease: Duration = .seconds(120), download: Bool = true
        ) {
            self.batchSize = batchSize
            self.actors = actors
            self.gpusPerActor = gpusPerActor
            self.cpusPerActor = cpusPerActor
            self.lease = lease
            self.download = download
        }
    }

    /// Deploys what the run leans on where it is not running yet: the gateway that hosts its session, with
    /// RayLAN's cluster code and the model (a local file) as its working directory. ``run(on:events:)`` does this
    /// itself. Returns the gateway and the model's path there.
    @discardableResult
    public func prepare(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }
    ) async throws -> (gateway: Gateway, model: String?) {
        try await OnClusterWork.gateway(on: cluster, model: deployment.model, httpPort: httpPort) {
            events(.preparing($0))
        }
    }

    /// The default ``clusterOutput`` for these paths and model.
    public var defaultClusterOutput: String {
        let key = (paths + [deployment.model]).joined(separator: "\n")
        let digest = SHA256.hash(data: Data(key.utf8)).prefix(6).hexString
        return "~/.raylan/on-cluster/\(digest)"
    }

    /// Runs to the end, handing each event to `events` (``DetectionEvent/preparing(_:)``,
    /// ``DetectionEvent/checking``, an ``DetectionEvent/answered(_:)`` per image as the cluster writes its line,
    /// ``DetectionEvent/progress(_:)``, ``DetectionEvent/downloaded(_:)`` and ``DetectionEvent/wrote(_:)`` with
    /// ``output``, then ``DetectionEvent/finished(_:)``); Ctrl-C (cancelling the task) stops the cluster side.
    /// - Throws: ``OnClusterError`` (`pathNotOnEveryNode`, `noInputs`, …), ``GatewayError``, ``ClusterError``,
    ///   `CancellationError`.
    @discardableResult
    public func run(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }
    ) async throws -> DetectionSummary {
        let output = settings.download ? self.output : nil
        guard VideoOptions.leaseRange.contains(settings.lease) else {
            throw OnClusterError(.invalidSource, "The lease must be from 5 to 86400 seconds, not \(settings.lease)")
        }
        if output == nil && !exports.subtracting(.annotated).isEmpty {
            throw OnClusterError(
                .invalidSource, "COCO, YOLO and report files are made on this machine from the downloaded results",
                remedy: "Give the folder to download them to (--out).")
        }
        for path in paths where !path.hasPrefix("/") {
            throw OnClusterError(
                .invalidSource, "'\(path)' is not an absolute path",
                remedy: "With --on-cluster, give paths as the cluster's nodes see them, e.g. /mnt/data/photos.")
        }
        let (gateway, model) = try await prepare(on: cluster, events: events)
        let folder = clusterOutput ?? defaultClusterOutput
        let spec = DatasetSessionSpec(
            paths: paths, model: model ?? deployment.model, outDir: folder, backend: deployment.backend.rawValue,
            imgsz: deployment.imageSize, conf: options.confidence, iou: options.iou, classes: options.classes,
            annotate: annotate, resume: resume, batchSize: settings.batchSize, actors: settings.actors,
            gpusPerActor: settings.gpusPerActor, cpusPerActor: settings.cpusPerActor, leaseS: settings.lease.seconds)
        // The session only drives Ray Data; the actor pool reserves what detection needs.
        let session = try await ClusterSession.create(
            "raylan_detect.dataset:DatasetSession", keywords: try spec.keywords(), on: gateway, cpus: 0)
        var finished = false
        do {
            _ = try await session.start()
            events(.checking)
            var summary: DetectionSummary?
            let started = ContinuousClock.now
            try await session.follow(wait: pollWait) { line in
                /// A line's kind, read before the line itself.
                struct Kind: Decodable { var type: String? }
                switch try line.decode(Kind.self).type {
                case "image":
                    // The cluster's journal line: the record a streamed run writes (with its node and annotated copy).
                    if let record = try? line.decode(DetectionRecord.self) { events(.answered(record)) }
                case "summary": summary = try line.decode(DetectionSummary.self)
                default: break
                }
            } progress: { progress in
                guard let total = progress["total"]?.doubleValue else { return }
                let count = { (key: String) in Int(progress[key]?.doubleValue ?? 0) }
                let skipped = count("skipped")
                events(
                    .progress(
                        DetectionProgress(
                            total: Int(total) - skipped, done: count("done") - skipped, failed: count("failed"),
                            skipped: skipped, seconds: (ContinuousClock.now - started).seconds,
                            measuredRate: progress["images_per_s"]?.doubleValue)))
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
                    if file.name == DetectionJournal.name {
                        _ = try DetectionJournal.moveAside(output.appendingPathComponent(DetectionJournal.name))
                    }
                    events(.downloaded(try await session.download(file, into: output)))
                }
                for file in try writeExports(into: output, seconds: result.seconds) { events(.wrote(file)) }
                result.out = output.path
            }
            await session.close(stopping: false)
            events(.finished(result))
            return result
        } catch {
            await session.close(stopping: !finished)
            throw error
        }
    }
}

extension ClusterDatasetRun {
    /// Writes ``exports`` from the downloaded journal in `output`; returns what it wrote (the `labels/` folder once).
    func writeExports(into output: URL, seconds: Double) throws -> [URL] {
        guard !exports.subtracting(.annotated).isEmpty else { return [] }
        let records = DetectionJournal.read(output.appendingPathComponent(DetectionJournal.name))
        var written = try DetectionExports.writeRunFiles(
            records, exports, in: output,
            imageLink: { record in
                // The annotated copy when it was downloaded beside the report (the cluster's file is not here),
                // by a plain relative name only: the name is the cluster's.
                guard let relative = record.annotated, DownloadTarget.problem(with: relative) == nil,
                    FileManager.default.fileExists(atPath: output.appendingPathComponent(relative).path)
                else { return nil }
                return relative
            }, elapsed: seconds)
        if exports.contains(.yolo) {
            written.append(
                try DetectionExports.writeLabels(records, in: output) {
                    DetectionExports.outputPath(of: $0.path, in: "labels", extension: "txt")
                })
        }
        return written
    }
}
