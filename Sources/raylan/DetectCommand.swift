import ArgumentParser
import Foundation
import RayLAN

struct DetectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Detect objects in images, videos and live streams with the cluster's detection service.",
        discussion: """
            PATH: image files, folders (searched recursively for .jpg .jpeg .png .webp .bmp) and globs. The \
            service is deployed first when it is not running (unless --no-deploy). Results go to --out: \
            detections.jsonl always (one line per input: its result or a named error, with the model and the \
            options that produced it; also the journal that --resume reads; a run without --resume moves the \
            previous one to detections.jsonl.1 once the service runs), annotations.json with --format coco, \
            labels/*.txt with --format yolo, annotated/*.jpg with --annotate (drawn on the cluster), report.html \
            with --report. A running service is reused only when it runs the same model (by content hash), else \
            it is redeployed (--no-deploy: refused).

            Videos and streams (.mp4 .mov .mkv .avi .webm … files, rtsp:// rtmp:// http(s):// udp:// URLs) are \
            decoded on the cluster: a local file is uploaded in pieces first (an interrupted upload resumes), \
            --on-cluster reads it from the head node's disks, a URL is opened by the cluster. --out gets \
            detections.jsonl (one line per detected frame: frame, time, detections, with track_id under --track) \
            as frames are detected, and at the end annotated.mp4 (--annotate), report.json (--report: per-class \
            counts per second), annotations.json (--format coco, with track_id under --track) or labels/*.txt \
            (--format yolo), each frame named frame_000012.jpg as 'ffmpeg -start_number 0 frame_%06d.jpg' names \
            the extracted frames; several sources run at once, each in its own sub-folder. A live stream drops \
            frames when the detector falls behind (counted), and reconnects with backoff when it breaks; \
            --json prints every frame's line on stdout as it arrives. Ctrl-C stops the work on the cluster.

            --on-cluster with images: the paths (files, folders, globs as the cluster's nodes see them) are read \
            and detected on the cluster with Ray Data (an actor pool with the service's model and backend); \
            detections.jsonl (and annotated/) is written on the head node in --cluster-out, downloaded to --out \
            when given; --resume skips what the cluster already answered. Every node must see the paths.

            Which option applies where (an option given where it does not apply is a usage error, exit 64):
            \(modeTable)

            Exit codes: 0 every input answered; \(someInputsFailed) some inputs failed (each named in \
            detections.jsonl); 1 other failure; \(ExitCodes.common)
            """)

    /// Some inputs failed; each has its named error in the journal.
    static let someInputsFailed: Int32 = 5

    enum Format: String, ExpressibleByArgument, CaseIterable { case json, coco, yolo }

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: ArgumentHelp("Images, folders or globs.", valueName: "path")) var paths: [String] = []
    @Option(name: .long, help: ArgumentHelp("The model (default: the shipped demo model).", valueName: "m"))
    var model: String?
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Lowest score kept.", valueName: "c"))
    var conf = 0.25
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("NMS IoU threshold.", valueName: "i"))
    var iou = 0.7
    @Option(name: .long, help: ArgumentHelp("Only these class ids, comma-separated.", valueName: "ids"))
    var classes: ClassIDs?
    @Option(name: .long, help: ArgumentHelp("Output folder (default raylan-out).", valueName: "dir")) var out: String?
    @Option(name: .long, help: "Label format besides detections.jsonl: json (none, the default), coco or yolo.")
    var format: Format?
    @Flag(name: .long, help: "Write annotated images (drawn on the cluster, at the size sent: see --max-side).")
    var annotate = false
    @Flag(name: .long, help: "Write report.html.") var report = false
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Requests in flight (default \(DetectionRun.defaultConcurrency)).", valueName: "n"))
    var concurrency: Int?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Images per request (one request costs the Serve proxy and the service less than several; default \(DetectionRun.defaultImagesPerRequest)).",
            valueName: "n"))
    var imagesPerRequest: Int?
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Skip inputs already answered in the journal (--out's detections.jsonl; the cluster's with --on-cluster); "
                + "failed ones that may pass are done again."))
    var resume = false
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "With --resume: when the journal was written with another model, --conf, --iou, --classes or --imgsz, "
                + "move it aside and start afresh instead of refusing."))
    var force = false
    @Flag(name: .long, help: "Fail instead of deploying the service when it is not running.") var noDeploy = false
    @Flag(
        name: .long,
        help: "Read the paths on the cluster (as its nodes see them): images with Ray Data, or a video file.")
    var onCluster = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --on-cluster or a video: the results' folder on the head node (default: a new private one for a video, removed once its files are downloaded; ~/.raylan/on-cluster/<hash> for images).",
            valueName: "dir"))
    var clusterOut: String?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Videos: detect every n-th frame (default 1).", valueName: "n"))
    var vidStride: Int?
    @Option(name: .long, help: ArgumentHelp("Videos: track objects across frames.", valueName: "bytetrack|botsort"))
    var track: VideoOptions.Tracker?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Streams: reconnection attempts after a stream breaks (default 5).", valueName: "n"))
    var reconnectAttempts: Int?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("--on-cluster images: most Ray Data actors (model copies).", valueName: "n"))
    var actors: Int?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "--on-cluster images: GPUs per actor (default: 1 where the cluster has GPUs, else 0).", valueName: "g"))
    var gpusPerActor: Double?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "--on-cluster images: CPUs per actor (default: 1, or what is free beside a read, at least 0.25).",
            valueName: "c"))
    var cpusPerActor: Double?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Videos and --on-cluster images: frames or images per model call on the cluster (default 8 for videos, "
                + "16 for images).", valueName: "n"))
    var batchSize: Int?
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Videos and --on-cluster images: seconds the work on the cluster waits for this client before it stops "
                + "itself (5-86400; default 120).", valueName: "seconds"))
    var lease: Int?
    @OptionGroup var shrink: ShrinkOptions
    @OptionGroup var viewing: ViewOptions
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Videos with --view: pictures a second sent from the cluster to the view (0.1-30; default 10), shrunk there.",
            valueName: "n"))
    var viewFPS: Double?
    @OptionGroup var output: OutputOptions
    @OptionGroup var deployment: DeploymentOptions

    func validate() throws {
        guard !paths.isEmpty else {
            throw ValidationError("Give at least one image, folder or glob, e.g. 'raylan detect samples/'.")
        }
        try OptionCheck.fraction(conf, "--conf")
        try OptionCheck.fraction(iou, "--iou")
        try OptionCheck.atLeast(concurrency, 1, "--concurrency")
        if isVideo && !paths.allSatisfy(VideoSource.isVideo) {
            throw ValidationError("Give videos and streams, or images, not both in one run.")
        }
        try checkOptionsApply()
        if force && !resume {
            throw ValidationError("--force goes with --resume (it moves aside a journal written with other settings).")
        }
        let leases = VideoOptions.leaseRange
        try OptionCheck.within(
            lease, Int(leases.lowerBound.components.seconds)...Int(leases.upperBound.components.seconds), "--lease")
        try OptionCheck.atLeast(vidStride, 1, "--vid-stride")
        try OptionCheck.within(batchSize, isVideo ? VideoOptions.batchRange : 1...1024, "--batch-size")
        try OptionCheck.atLeast(reconnectAttempts, 0, "--reconnect-attempts")
        try OptionCheck.atLeast(actors, 1, "--actors")
        try OptionCheck.amount(gpusPerActor, "--gpus-per-actor")
        try OptionCheck.positive(cpusPerActor, "--cpus-per-actor")
        if mode == .imagesOnCluster && out == nil && ((format != nil && format != .json) || report) {
            throw ValidationError(
                "--format and --report with --on-cluster are made on this machine from the downloaded results: "
                    + "give --out.")
        }
        if onCluster && !isVideo, let relative = paths.first(where: { !$0.hasPrefix("/") }) {
            throw ValidationError(
                "With --on-cluster, give paths as the cluster's nodes see them (absolute), not '\(relative)'.")
        }
        try OptionCheck.within(imagesPerRequest, 1...256, "--images-per-request")
    }

    /// The score, IoU and class filter asked for.
    var detectionOptions: DetectionOptions { DetectionOptions(confidence: conf, iou: iou, classes: classes?.ids) }

    /// The files asked for besides the journal.
    var outputs: DetectionRun.Outputs {
        var outputs: DetectionRun.Outputs = []
        if format == .coco { outputs.insert(.coco) }
        if format == .yolo { outputs.insert(.yolo) }
        if annotate { outputs.insert(.annotated) }
        if report { outputs.insert(.report) }
        return outputs
    }

    /// Whether the inputs are videos or streams (all of them; a mix with images is refused in validate()).
    var isVideo: Bool { paths.contains(where: VideoSource.isVideo) }

    func run() async throws {
        if isVideo { return try await runVideos() }
        if onCluster { return try await runDataset() }
        let out = self.out ?? "raylan-out"
        var summary: DetectionSummary?
        try await reportingErrors {
            let model = try self.model ?? DeploymentOptions.defaultModel()
            let gallery = viewing.isOn ? RunGallery(folder: URL(fileURLWithPath: out)) : nil
            summary = try await viewing.serving(gallery.map { .gallery($0) }) {
                var summary: DetectionSummary?
                try await Connection.with(cluster) { (connection: Connection) in
                    let service: DetectionRun.Service
                    if noDeploy {
                        service = .running(
                            DetectionDeployment.defaultName(for: model),
                            model: try DetectionDeployment(model: model).modelIdentity())
                    } else {
                        service = .deployIfNeeded(
                            try await deployment.make(model: model, name: nil, on: connection.cluster),
                            httpPort: deployment.servePort(for: connection))
                    }
                    let run = DetectionRun(
                        inputs: paths, output: URL(fileURLWithPath: out), service: service,
                        options: detectionOptions, outputs: outputs,
                        concurrency: concurrency ?? DetectionRun.defaultConcurrency,
                        imagesPerRequest: imagesPerRequest ?? DetectionRun.defaultImagesPerRequest, resume: resume,
                        force: force,
                        key: try deployment.key(), maxSide: shrink.value)
                    let display = DetectProgressDisplay()
                    summary = try await run.run(
                        on: connection.cluster,
                        events: { event in
                            display.show(event)
                            if let gallery { Task { await gallery.take(event) } }
                        })
                    display.finish()
                }
                return summary
            }
        }
        guard let summary else { return }
        if output.json {
            try Terminal.json(summary)
        } else {
            let skipped = summary.skipped > 0 ? ", \(summary.skipped) already done" : ""
            Terminal.out(
                "\(summary.inputs) inputs: \(summary.succeeded) succeeded, \(summary.failed) failed\(skipped)"
                    + String(format: "; %.1f images/s. ", summary.imagesPerSecond)
                    + "Results in \(URL(fileURLWithPath: summary.out ?? out).appendingPathComponent("detections.jsonl").path)"
            )
        }
        if summary.failed > 0 { throw ExitCode(Self.someInputsFailed) }
    }
}

/// `--classes 0,2`.
struct ClassIDs: ExpressibleByArgument {
    var ids: [Int]

    init?(argument: String) {
        let ids = argument.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard !ids.isEmpty, ids.allSatisfy({ (0..<DetectionOptions.classIDLimit).contains($0 ?? -1) }) else {
            return nil
        }
        self.ids = ids.compactMap { $0 }
    }
}

extension VideoOptions.Tracker: ExpressibleByArgument {}
