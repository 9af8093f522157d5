import Foundation
import RayLANCore
import RayLANGateway

/// How a video is read and what is made of it.
public struct VideoOptions: Sendable, Hashable {
    /// Ultralytics' multi-object trackers.
    public enum Tracker: String, Sendable, Hashable, CaseIterable, Codable {
        case bytetrack, botsort
    }

    /// conf, iou and classes (``DetectionOptions/annotate`` is ``annotate`` here).
    public var detection: DetectionOptions
    /// Every `stride`-th frame is detected (Ultralytics' `vid_stride`). Default 1.
    public var stride: Int
    /// Track objects across frames: each detection gets a ``Detection/trackID``. Default nil.
    public var tracker: Tracker?
    /// Write `annotated.mp4` (one frame per detected frame). Default false.
    public var annotate: Bool
    /// Per-class counts over time (`report.json`, and a ``DetectionEvent/report(_:)``). Default false.
    public var report: Bool
    /// Frames per detection request, from ``batchRange``. Default 8.
    public var batch: Int
    /// The frames a detection request may hold.
    public static let batchRange = 1...64
    /// For a live stream: frames held while the detector is busy; older ones are dropped (and counted). Default 16.
    public var buffer: Int
    /// For a live stream: reconnection attempts after it breaks, waiting ``reconnectDelay`` and doubling up to
    /// 8 s between them. Default 5.
    public var reconnectAttempts: Int
    /// The first wait before reconnecting. Default 0.5 s.
    public var reconnectDelay: Duration
    /// How long the session on the cluster waits for a call of this client before it stops itself, releases
    /// its actors, CPUs and GPUs and writes `abandoned` in its journal (a client that crashed or lost the LAN
    /// leaves nothing running), from ``leaseRange``. The client polls every half second, so only a client that
    /// is gone lets it run out. Default 120 s.
    public var lease: Duration
    /// The leases a session takes (the cluster's bounds).
    public static let leaseRange: ClosedRange<Duration> = .seconds(5) ... .seconds(86_400)
    /// Pictures a second for a person watching the run (``DetectionEvent/preview(_:)``: processed frames shrunk on
    /// the cluster to ``previewSide`` pixels, with their detections), at most; nil: none (the default).
    public var previewFPS: Double?
    /// The previews a second a session makes at most.
    public static let previewFPSRange: ClosedRange<Double> = 0.1...30
    /// A preview's longer side in pixels, from ``previewSideRange``. Default 640.
    public var previewSide: Int = 640
    /// The preview sides a session takes.
    public static let previewSideRange = 64...1920

    public init(
        detection: DetectionOptions = DetectionOptions(), stride: Int = 1, tracker: Tracker? = nil,
        annotate: Bool = false, report: Bool = false, batch: Int = 8, buffer: Int = 16, reconnectAttempts: Int = 5,
        reconnectDelay: Duration = .milliseconds(500), lease: Duration = .seconds(120)
    ) {
        self.lease = lease
        self.detection = detection
        self.stride = stride
        self.tracker = tracker
        self.annotate = annotate
        self.report = report
        self.batch = batch
        self.buffer = buffer
        self.reconnectAttempts = reconnectAttempts
        self.reconnectDelay = reconnectDelay
    }

    /// What is wrong with the options, if anything (a usage error).
    public var problem: String? {
        if stride < 1 { return "--vid-stride must be a whole number of 1 or more, not \(stride)" }
        if !Self.batchRange.contains(batch) {
            return
                "the batch must be from \(Self.batchRange.lowerBound) to \(Self.batchRange.upperBound) frames, not \(batch)"
        }
        if buffer < 1 { return "the live buffer must hold at least 1 frame, not \(buffer)" }
        if reconnectAttempts < 0 { return "reconnection attempts cannot be negative" }
        if !Self.leaseRange.contains(lease) { return "the lease must be from 5 to 86400 seconds, not \(lease)" }
        if let previewFPS, !Self.previewFPSRange.contains(previewFPS) {
            return "--view-fps must be from 0.1 to 30 pictures a second, not \(previewFPS)"
        }
        if !Self.previewSideRange.contains(previewSide) {
            return "a preview's side must be from \(Self.previewSideRange.lowerBound) to "
                + "\(Self.previewSideRange.upperBound) pixels, not \(previewSide)"
        }
        return nil
    }
}

/// Object detection over a video file or a live stream, decoded on the cluster and detected by the detection
/// service's replicas (the same dynamic batches as images), optionally tracked: an `AsyncSequence` of
/// ``DetectionEvent``s.
///
/// ```swift
/// let run = VideoRun(source: .stream("rtsp://cam.local/live"), service: .deployIfNeeded(deployment),
///                    options: VideoOptions(tracker: .bytetrack))
/// for try await event in run.events(on: cluster) {
///     if case .frame(let frame) = event { print(frame.frame, frame.detections.count) }
/// }
/// ```
///
/// The work runs in a session actor on the cluster's head node (through RayLAN's gateway), which also writes
/// `detections.jsonl` (and `annotated.mp4`, `report.json`) there; with ``output`` they are downloaded at the end,
/// and `detections.jsonl` is written here frame by frame as results arrive. Cancelling the consuming task (Ctrl-C)
/// stops the cluster side. A stream lost for good ends the sequence with ``OnClusterError`` `streamLost`.
public struct VideoRun: Sendable {
    public var source: VideoSource
    public var options: VideoOptions
    /// The detection service whose replicas detect the frames.
    public var service: DetectionService
    /// The service's key, when it has one and it is not read from the cluster.
    public var key: ServiceKey?
    /// A local folder for `detections.jsonl` and the downloaded outputs. Default nil: nothing written here.
    public var output: URL?
    /// The session's folder on the head node. Default nil: a new folder under its temp directory, removed (with
    /// the uploaded copy) once the run has downloaded the outputs.
    public var clusterOutput: String?
    /// Label files made from the frames' lines at the end, in ``output``: ``DetectionOutputs/coco``
    /// (`annotations.json`) and ``DetectionOutputs/yolo`` (`labels/`), each frame named as a frame extractor names
    /// it (``frameFileName(_:)``). Default none; the others are ``VideoOptions``' (annotated video, report).
    public var exports: DetectionOutputs = []
    /// How long a poll waits on the cluster for new frames. Default 0.5 s.
    public var pollWait: Duration = .milliseconds(500)
    /// RayLAN's folder on this machine, where a local file's upload record is kept (`uploads/<sha256>.json`: the
    /// pieces on the cluster, so that an interrupted upload sends only what is missing). Default
    /// `$RAYLAN_HOME`, else `~/.raylan`.
    public var home: String = RayLANHome.path()

    public init(
        source: VideoSource, service: DetectionService, options: VideoOptions = VideoOptions(),
        key: ServiceKey? = nil, output: URL? = nil, clusterOutput: String? = nil
    ) {
        self.source = source
        self.service = service
        self.options = options
        self.key = key
        self.output = output
        self.clusterOutput = clusterOutput
    }

    /// The events of the run; the run starts when iteration starts and stops (on the cluster too) when the
    /// iterating task is cancelled.
    public func events(on cluster: RayCluster) -> AsyncThrowingStream<DetectionEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: DetectionEvent.self)
        let task = Task {
            do {
                try await run(on: cluster) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Deploys what a run leans on where it is not running yet: the detection service and the gateway (each a
    /// Serve application). ``run(on:events:)`` does this itself; several runs started at once on a fresh cluster
    /// call it first, once, so that their deploys do not overwrite each other's.
    /// - Returns: the service's application name and the gateway.
    @discardableResult
    public func prepare(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void
    ) async throws -> (application: String, gateway: Gateway) {
        try await service.ensureRunning(key: key, on: cluster, events: events)
        let application = service.application
        let (gateway, _) = try await OnClusterWork.gateway(
            on: cluster, model: nil, httpPort: OnClusterWork.httpPort(of: service)
        ) { events(.preparing($0)) }
        return (application, gateway)
    }

    /// Runs to the end, handing each event to `events`: ``DetectionEvent/deploying(_:)`` and
    /// ``DetectionEvent/preparing(_:)``,
    /// ``DetectionEvent/uploading(sent:total:)`` for a local file, ``DetectionEvent/opened(_:)``, then
    /// ``DetectionEvent/frame(_:)``s with ``DetectionEvent/frames(_:)`` (and reconnections, the report and
    /// previews), ``DetectionEvent/downloaded(_:)`` with ``output``, and ``DetectionEvent/finished(_:)``.
    /// - Returns: the summary, with the session's counts in ``DetectionSummary/video``.
    /// - Throws: ``OnClusterError`` (`streamLost`, `sourceNotFound`, `sessionFailed` when the session ended
    ///   without its summary, …), ``GatewayError``, ``ServeError``, ``ClusterError``, `CancellationError`.
    @discardableResult
    public func run(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }
    ) async throws -> DetectionSummary {
        if let problem = options.problem { throw OnClusterError(.invalidSource, problem) }
        let (application, gateway) = try await prepare(on: cluster, events: events)
        var spec = VideoSessionSpec(
            source: "", detector: .init(app: application), stride: options.stride, annotate: options.annotate,
            report: options.report, conf: options.detection.confidence, iou: options.detection.iou,
            classes: options.detection.classes, track: options.tracker?.rawValue, batch: options.batch,
            buffer: options.buffer, reconnectAttempts: options.reconnectAttempts,
            reconnectDelay: options.reconnectDelay.seconds, leaseS: options.lease.seconds, outDir: clusterOutput,
            previewFPS: options.previewFPS, previewSide: options.previewFPS == nil ? nil : options.previewSide)
        // The local journal first: a folder that cannot be written is found before anything is uploaded.
        let journal = try output.map { try DetectionJournal.new(in: $0) }
        var upload: VideoUpload?
        switch source {
        case .file(let url):
            let uploaded = try await VideoUpload.upload(url, via: gateway, home: home) {
                events(.uploading(sent: $0, total: $1))
            }
            spec.source = url.lastPathComponent
            spec.chunks = uploaded.chunks.map { RemoteArgument.ref($0).wire }
            spec.sha256 = uploaded.sha256
            spec.name = "input." + (url.pathExtension.isEmpty ? "mp4" : url.pathExtension)
            upload = uploaded
        case .cluster(let path):
            spec.source = path
        case .stream(let url):
            spec.source = url
            spec.live = true
        }
        let session = try await ClusterSession.create(
            "raylan_detect.video:VideoSession", keywords: try spec.keywords(), on: gateway)
        var finished = false
        var counted: VideoSummary?
        do {
            events(.opened(try await session.start()))
            // The previews' task ends with the group, before this call returns: `events` does not escape it.
            try await withoutActuallyEscaping(events) { events in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    if options.previewFPS != nil {
                        group.addTask { await Self.followPreviews(of: session, events: events) }
                    }
                    try await session.follow(wait: pollWait) { line in
                        switch try Self.line(line) {
                        case .event(let event):
                            // The session's own text of the line, as its journal on the cluster holds it: not
                            // re-encoded.
                            if case .frame = event { try journal?.append(line: line.text) }
                            events(event)
                        case .summary(let summary): counted = summary
                        case nil: break
                        }
                    } progress: {
                        events(.frames($0))
                    }
                    group.cancelAll()
                }
            }
            finished = true
            guard let counted else {
                throw OnClusterError(
                    .sessionFailed, "The video's session ended without its summary",
                    remedy: "It was stopped from elsewhere, or its actor died: run it again.")
            }
            if let output {
                // The journal is written here frame by frame. Each name is the cluster's: download(_:into:) takes
                // only a plain one inside `output`.
                for file in try await session.outputs()
                where file.name != upload?.fileName && file.name != DetectionJournal.name {
                    events(.downloaded(try await session.download(file, into: output)))
                }
                for file in try writeExports(into: output, summary: counted) { events(.wrote(file)) }
            }
            await session.close(stopping: false)
            if let upload { await upload.release(via: gateway) }
            let summary = DetectionSummary(video: counted, out: output?.path, clusterOutput: clusterOutput)
            events(.finished(summary))
            return summary
        } catch {
            await session.close(stopping: !finished)
            // The cluster's copy is not the file: the next run uploads it whole again.
            if (error as? OnClusterError)?.code == .uploadCorrupt { await upload?.release(via: gateway) }
            throw error
        }
    }

    /// Hands on the session's newest preview each time there is a newer one, until cancelled or the session
    /// ends. A preview that fails (the session ended, a call failed) ends the previews, not the run: they are
    /// for a person watching, and the results come by the lines.
    static func followPreviews(of session: ClusterSession, events: @Sendable (DetectionEvent) -> Void) async {
        var last = -1
        while !Task.isCancelled {
            guard let data = try? await session.preview(after: last, wait: .seconds(2)) else { return }
            if data.isEmpty {
                // Nothing newer within the wait, or the session ended (then its lines end the run soon).
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            guard let preview = try? VideoPreview(data) else { return }
            last = preview.header.frame
            events(.preview(preview))
        }
    }

    /// What one of the session's lines holds: an event, or the session's summary.
    enum SessionLine {
        case event(DetectionEvent)
        case summary(VideoSummary)
    }

    /// What one of the session's lines stands for (nil for a line of a kind this client does not know), decoded
    /// in one pass over its text; a frame keeps the line's text.
    static func line(_ line: ClusterSession.Line) throws -> SessionLine? {
        let decoded = try line.decode(LineEvent.self).line
        guard case .event(.frame(var frame)) = decoded else { return decoded }
        frame.text = line.text
        return .event(.frame(frame))
    }

    /// The event one of the session's lines stands for (nil for its summary, or a line of a kind this client
    /// does not know).
    static func event(from line: ClusterSession.Line) throws -> DetectionEvent? {
        guard case .event(let event) = try Self.line(line) else { return nil }
        return event
    }

    /// A line's meaning: its `type` read, then the rest of the same line as that type's value.
    private struct LineEvent: Decodable {
        var line: SessionLine?

        enum CodingKeys: String, CodingKey { case type, event, message, attempt, of, delay }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let number = { (key: CodingKeys) in try container.decodeIfPresent(Double.self, forKey: key) ?? 0 }
            switch try container.decodeIfPresent(String.self, forKey: .type) {
            case "frame": line = .event(.frame(try FrameResult(from: decoder)))
            case "summary": line = .summary(try VideoSummary(from: decoder))
            case "report": line = .event(.report(try JSONValue(from: decoder)))
            case "event":
                let message = try container.decodeIfPresent(String.self, forKey: .message) ?? ""
                switch try container.decodeIfPresent(String.self, forKey: .event) {
                case "reconnecting":
                    line = .event(
                        .reconnecting(
                            attempt: Int(try number(.attempt)), of: Int(try number(.of)), delay: try number(.delay),
                            message: message))
                case "reconnected": line = .event(.reconnected(message))
                default: line = nil
                }
            default: line = nil
            }
        }
    }
}

extension VideoRun {
    /// A frame's name in the label files: `frame_000012.jpg` for frame 12, the source's own frame number (with a
    /// stride too), as `ffmpeg -i clip.mp4 -start_number 0 frame_%06d.jpg` names the extracted frames, so that an
    /// annotation tool pairs the labels with them.
    public static func frameFileName(_ frame: Int) -> String {
        let digits = String(frame)
        return "frame_" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".jpg"
    }

    /// Writes ``exports`` from the frames' lines of the local journal in `output`, each frame a record of the
    /// source's size (`summary`'s): COCO with each box's `track_id` where the frames were tracked, and a YOLO
    /// file per frame (empty for a frame without boxes, as YOLO has it). A frame the model failed on is left out.
    /// Returns what it wrote (the `labels/` folder once).
    func writeExports(into output: URL, summary: VideoSummary) throws -> [URL] {
        guard !exports.isDisjoint(with: [.coco, .yolo]) else { return [] }
        guard let width = summary.width, let height = summary.height else { return [] }
        let text =
            (try? String(contentsOf: output.appendingPathComponent(DetectionJournal.name), encoding: .utf8)) ?? ""
        let decoder = JSONDecoder()
        let records = text.split(separator: "\n").compactMap { line -> DetectionRecord? in
            guard let frame = try? decoder.decode(FrameResult.self, from: Data(line.utf8)), frame.error == nil else {
                return nil
            }
            let result = DetectionResult(
                model: service.application, image: .init(width: width, height: height, format: "jpeg"),
                detections: frame.detections, batchSize: 0, timingsMs: [:])
            return DetectionRecord(path: Self.frameFileName(frame.frame), result: result)
        }
        // The run's own files of a video are its annotated.mp4 and report.json: only COCO comes from here.
        var written = try DetectionExports.writeRunFiles(
            records, exports.intersection(.coco), in: output, imageLink: { _ in nil }, elapsed: summary.seconds)
        if exports.contains(.yolo) {
            written.append(
                try DetectionExports.writeLabels(records, in: output) {
                    "labels/" + ($0.path as NSString).deletingPathExtension + ".txt"
                })
        }
        return written
    }
}
