import Crypto
import Foundation
import RayLANCore
import RayLANGateway

/// What `raylan detect` runs, as a library value, for every ``Source``: images (files, folders, globs) on this
/// machine through a detection service, with a bounded number of requests in flight; images on the cluster's disks
/// (``ClusterDatasetRun``); a video or a live stream (``VideoRun``). Into an output folder: `detections.jsonl` (one
/// line per input or frame: its result or a named error; for images also the journal that ``resume`` reads), and
/// on request COCO `annotations.json`, YOLO `labels/*.txt` (a video's per frame, ``VideoRun/frameFileName(_:)``),
/// `annotated/*.jpg` (a video's `annotated.mp4`) and `report.html` (a video's `report.json`). Every source reports
/// the same ``DetectionEvent``s and ends with the same ``DetectionSummary``.
///
/// ```swift
/// try await RayCluster.withConnection(to: ClusterAddress(parsing: "192.168.1.130")) { cluster in
///     let service = DetectionRun.Service.deployIfNeeded(DetectionDeployment(model: "yolo11s.pt", gpusPerReplica: 1))
///     let run = DetectionRun(inputs: ["photos/"], output: URL(fileURLWithPath: "out"), service: service)
///     let summary = try await run.run(on: cluster) { if case .progress(let p) = $0 { print(p.done, p.total) } }
///     print(summary.succeeded, "of", summary.inputs)
/// }
/// ```
///
/// A failed input is data, not an error: it has its line in the journal and counts in
/// ``DetectionSummary/failed``.
public struct DetectionRun: Sendable {
    /// The service the run uses.
    public typealias Service = DetectionService
    /// The files written besides `detections.jsonl`.
    public typealias Outputs = DetectionOutputs
    /// How far the run is.
    public typealias Progress = DetectionProgress

    /// What a run detects. The settings that belong to one source only travel with it.
    public enum Source: Sendable, Hashable {
        /// Image files, folders (searched recursively for `.jpg .jpeg .png .webp .bmp`) and globs on this
        /// machine, each sent to the service.
        case files([String])
        /// Images on the cluster's disks: absolute paths (files, folders, globs) as every node sees them, read and
        /// detected there with Ray Data (``ClusterDatasetRun``) by detectors with the service's deployment (its
        /// model, backend and input size; the service itself is not used, so ``service`` must be
        /// ``Service/deployIfNeeded(_:httpPort:)``). The results are written on the head node (in
        /// ``clusterOutput``) and downloaded to ``output``.
        case onCluster([String], ClusterDatasetRun.Settings = ClusterDatasetRun.Settings())
        /// A video file (here or on the cluster's disks) or a live stream, decoded on the cluster and detected by
        /// the service (``VideoRun``). Its conf, IoU, classes, annotate, report, COCO and YOLO are the run's
        /// ``options`` and ``outputs``; `detections.jsonl` is written here frame by frame.
        case video(VideoSource, VideoOptions = VideoOptions())
    }

    /// What the run detects.
    public var source: Source
    /// The image files, folders and globs of a ``Source/files(_:)`` run (empty for the other sources); setting
    /// them makes the run one.
    public var inputs: [String] {
        get { if case .files(let inputs) = source { inputs } else { [] } }
        set { source = .files(newValue) }
    }
    /// The output folder; created when missing.
    public var output: URL
    /// The detection service.
    public var service: Service
    /// Score, IoU and class filter for every image. ``Outputs/annotated`` sets `annotate`. Default: the
    /// service's defaults.
    public var options: DetectionOptions
    /// Files besides the journal. Default none.
    public var outputs: Outputs
    /// Requests in flight. Default ``defaultConcurrency``.
    public var concurrency: Int
    /// Images per request. Default ``defaultImagesPerRequest``.
    public var imagesPerRequest: Int
    /// Requests in flight when none is asked for: 8.
    public static let defaultConcurrency = 8
    /// Images per request when none is asked for: 8.
    public static let defaultImagesPerRequest = 8
    /// Keep the journal's lines that stand (results, and errors that are the input's own: see
    /// ``DetectionRecord/isFinal``) and send only the inputs it lacks. Refused (``DetectionError``
    /// `resumeSettingsDiffer`) when the journal was written with other settings (``DetectionRecord/Settings``).
    /// Default false: a new journal, the previous one moved aside (`detections.jsonl.1`, …) once the service
    /// is known to run.
    public var resume: Bool
    /// With ``resume``: a journal written with other settings is moved aside and a new one started instead of
    /// refusing. Default false.
    public var force: Bool
    /// The service key to send instead of the one the application was deployed with (read from Serve's
    /// status over the dashboard). Default nil.
    public var key: ServiceKey?
    /// How far each JPEG is shrunk on this machine before it is sent (``DownscaledImage``); the journal's boxes and
    /// image sizes are the original file's either way, and a shrunk input's result records what was sent
    /// (``DetectionResult/sent``). ``MaxSide/auto`` reads the model's input size from the service once per run
    /// (when the service does not say, the files are sent as they are). Default ``MaxSide/auto``.
    public var maxSide: MaxSide
    /// Images on the cluster and videos: the results' folder on the head node. Default nil: for images
    /// ``ClusterDatasetRun/defaultClusterOutput``, for a video a new folder, removed once its files are downloaded.
    public var clusterOutput: String?

    /// A run of image files on this machine (``Source/files(_:)``).
    public init(
        inputs: [String], output: URL, service: Service, options: DetectionOptions = DetectionOptions(),
        outputs: Outputs = [], concurrency: Int = defaultConcurrency, imagesPerRequest: Int = defaultImagesPerRequest,
        resume: Bool = false,
        force: Bool = false, key: ServiceKey? = nil, maxSide: MaxSide = .auto
    ) {
        self.force = force
        self.key = key
        self.maxSide = maxSide
        self.source = .files(inputs)
        self.output = output
        self.service = service
        self.options = options
        self.outputs = outputs
        self.concurrency = concurrency
        self.imagesPerRequest = imagesPerRequest
        self.resume = resume
    }

    /// A run of any source. Image files' own settings (requests in flight, images per request, ``force``,
    /// ``maxSide``) keep their defaults here.
    public init(
        source: Source, output: URL, service: Service, options: DetectionOptions = DetectionOptions(),
        outputs: Outputs = [], resume: Bool = false, key: ServiceKey? = nil, clusterOutput: String? = nil
    ) {
        self.init(
            inputs: [], output: output, service: service, options: options, outputs: outputs, resume: resume, key: key)
        self.source = source
        self.clusterOutput = clusterOutput
    }

    /// The journal, `detections.jsonl` in the output folder.
    public var journalURL: URL { output.appendingPathComponent(DetectionJournal.name) }

    /// Runs the source: for image files, expands the inputs, makes sure the service runs the model (deploying it
    /// for ``Service/deployIfNeeded(_:httpPort:)``), sends every input not yet answered, and writes the journal and
    /// the outputs; for images on the cluster, ``ClusterDatasetRun/run(on:events:)``; for a video,
    /// ``VideoRun/run(on:events:)``.
    ///
    /// - Parameter events: called with each ``DetectionEvent``, from the calling task, in order:
    ///   ``DetectionEvent/deploying(_:)`` and its steps when the service is deployed, ``DetectionEvent/started(_:)``,
    ///   an ``DetectionEvent/answered(_:)`` and a ``DetectionEvent/progress(_:)`` per input, then
    ///   ``DetectionEvent/finished(_:)``.
    /// - Returns: the summary; inputs that failed are counted there, not thrown (an output file that cannot be
    ///   written is the input's `output_failed`).
    /// - Throws: ``DetectionError`` (`noInput`) when an argument matches no image file, (`resumeSettingsDiffer`) when
    ///   resuming a journal written with other settings, (`invalidMaxSide`) for ``MaxSide/pixels(_:)`` below 1,
    ///   before anything is sent or written; ``ServeError``
    ///   when the service is not running, runs another model, or cannot be deployed; ``ClusterError``; an error
    ///   writing the journal or the run's summary files; for the other sources, what their runs throw, and
    ///   ``OnClusterError`` `invalidSource` for a setting that does not apply to the source.
    @discardableResult
    public func run(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }
    ) async throws -> DetectionSummary {
        switch source {
        case .files(let inputs): try await runFiles(inputs, on: cluster, events: events)
        case .onCluster(let paths, let settings): try await datasetRun(paths, settings).run(on: cluster, events: events)
        case .video(let video, let options): try await videoRun(video, options).run(on: cluster, events: events)
        }
    }

    /// Deploys what the run leans on where it is not running yet: the detection service, and for work on the
    /// cluster the gateway that hosts it. ``run(on:events:)`` does this itself; several runs started at once on a
    /// fresh cluster call it first, once, so that their deploys do not overwrite each other's.
    public func prepare(on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }) async throws {
        switch source {
        case .files: try await service.ensureRunning(key: key, on: cluster, events: events)
        case .onCluster(let paths, let settings):
            try await datasetRun(paths, settings).prepare(on: cluster, events: events)
        case .video(let video, let options): try await videoRun(video, options).prepare(on: cluster, events: events)
        }
    }

    /// The run of images on the cluster this run stands for.
    func datasetRun(_ paths: [String], _ settings: ClusterDatasetRun.Settings) throws -> ClusterDatasetRun {
        guard case .deployIfNeeded(let deployment, let httpPort) = service else {
            throw OnClusterError(
                .invalidSource,
                "Images on the cluster are detected with the service's deployment (its model, backend and input size)",
                remedy: "Give the deployment (deployIfNeeded), not a running application's name.")
        }
        var run = ClusterDatasetRun(
            paths: paths, deployment: deployment, options: options, annotate: outputs.contains(.annotated),
            resume: resume, clusterOutput: clusterOutput, output: output)
        run.settings = settings
        run.exports = outputs
        run.httpPort = httpPort
        return run
    }

    /// The video run this run stands for.
    func videoRun(_ video: VideoSource, _ options: VideoOptions) throws -> VideoRun {
        if resume {
            throw OnClusterError(
                .invalidSource, "A video or stream does not resume",
                remedy: "Run it again without resume; its journal is started afresh (the last one kept as .1).")
        }
        var options = options
        options.detection = self.options
        options.annotate = outputs.contains(.annotated)
        options.report = outputs.contains(.report)
        var run = VideoRun(
            source: video, service: service, options: options, key: key, output: output, clusterOutput: clusterOutput)
        run.exports = outputs.intersection([.coco, .yolo])
        return run
    }

    /// A run of image files on this machine.
    func runFiles(
        _ inputs: [String], on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void
    ) async throws -> DetectionSummary {
        if case .pixels(let pixels) = maxSide, pixels < 1 { throw MaxSide.invalid(maxSide.description) }
        let (inputs, unmatched) = DetectionInput.expand(inputs)
        if let first = unmatched.first {
            throw DetectionError(
                .noInput,
                "'\(first)' matches no image file. Pass image files (.jpg .jpeg .png .webp .bmp), folders that "
                    + "hold some, or globs.")
        }
        let model = try service.model()
        let plan = try service.plan(on: cluster, status: try await cluster.serveStatus(), model: model)
        let settings = plan.settings(options, maxSide: maxSide)
        var earlier: [DetectionRecord] = []
        var isNewJournal = !resume
        if resume {
            earlier = DetectionJournal.read(journalURL)
            if let other = earlier.first(where: { $0.settings != settings }) {
                guard force else { throw Self.mismatch(journalURL, settings: settings, journal: other.settings) }
                earlier = []
                isNewJournal = true
            }
        }
        var client = try await service.ensure(plan, key: key, on: cluster, events: events)
        client.maxSide = try await resolveMaxSide(with: client)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        // The service runs: only now does the previous journal make way (kept as detections.jsonl.1).
        if isNewJournal { try DetectionJournal.moveAside(journalURL) }
        // Keep the lines that stand and still have their outputs; rewrite the journal with them only (an
        // interrupted run may have torn the last line), atomically.
        let inputPaths = Set(inputs.map(\.path))
        earlier = earlier.filter { $0.isFinal && (!inputPaths.contains($0.path) || restoreOutputs(of: $0)) }
        try DetectionJournal.replace(journalURL, with: earlier)
        let answered = Set(earlier.map(\.path))
        let todo = inputs.filter { !answered.contains($0.path) }

        let journal = try DetectionJournal(url: journalURL)
        var progress = Progress(total: todo.count, done: 0, failed: 0, skipped: inputs.count - todo.count, seconds: 0)
        events(.started(progress))
        var options = self.options
        options.annotate = outputs.contains(.annotated)
        let clock = ContinuousClock()
        let started = clock.now
        func record(_ record: DetectionRecord) throws {
            var record = record
            record.settings = settings
            try journal.append(record)
            progress.done += 1
            if !record.succeeded { progress.failed += 1 }
            progress.seconds = (clock.now - started).seconds
            events(.answered(record))
            events(.progress(progress))
        }
        // Inputs refused before reading (a FIFO, 4 GiB or more, a name that is not UTF-8) are never sent.
        for input in todo where input.error != nil {
            try record(DetectionRecord(path: input.path, error: input.error))
        }
        // A service that stopped answering (its head went down): once this many inputs in a row failed as
        // unavailable (each request already retried), the rest are not sent but named at once, for --resume.
        let giveUpAfter = max(8, 2 * concurrency * imagesPerRequest)
        var unavailableInARow = 0
        let sendable = todo.filter { $0.error == nil }
        var recorded = Set<String>()
        for await (input, result) in client.results(
            for: sendable, file: \.url, concurrency: concurrency, imagesPerRequest: imagesPerRequest, options: options)
        {
            try record(write(result, for: input))
            recorded.insert(input.path)
            if case .failure(let error) = result, error.code == .unavailable {
                unavailableInARow += 1
            } else {
                unavailableInARow = 0
            }
            if unavailableInARow >= giveUpAfter { break }
        }
        if unavailableInARow >= giveUpAfter {
            let notSent = DetectionError(
                .unavailable,
                "not sent: the service stopped answering (\(unavailableInARow) inputs in a row failed); run again "
                    + "with --resume once it is back")
            for input in sendable where !recorded.contains(input.path) {
                try record(DetectionRecord(path: input.path, error: notSent))
            }
        }
        progress.seconds = (clock.now - started).seconds
        let records = try writeSummaryOutputs(inputs, seconds: progress.seconds)
        let failed = records.filter { !$0.succeeded }.count
        let summary = DetectionSummary(
            inputs: inputs.count, succeeded: records.count - failed, failed: failed, skipped: progress.skipped,
            seconds: progress.seconds, imagesPerSecond: progress.imagesPerSecond, out: output.path)
        events(.finished(summary))
        return summary
    }

    /// The pixels ``maxSide`` stands for with the service: for ``MaxSide/auto`` its model's input size, or nil
    /// (files sent as they are, with a warning logged) when the service does not say.
    func resolveMaxSide(with client: DetectionClient) async throws -> Int? {
        do {
            return try await client.pixels(for: maxSide)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            client.cluster.logger.warning(
                "--max-side auto: the service does not say its model's input size (\(error)); files are sent as is")
            return nil
        }
    }

    static func mismatch(
        _ journal: URL, settings: DetectionRecord.Settings, journal earlier: DetectionRecord.Settings?
    ) -> DetectionError {
        let differences =
            earlier.map { settings.differences(from: $0) } ?? ["the journal's lines record no settings"]
        return DetectionError(
            .resumeSettingsDiffer,
            "Cannot resume \(journal.path): it was written with other settings "
                + "(\(differences.joined(separator: ", "))). "
                + "Resume with the journal's settings, or pass --force to start a new journal (the old one is moved "
                + "to \(journal.lastPathComponent).1).")
    }

    /// Writes a resumed record's YOLO labels from the journal; false when it must be sent again (its
    /// annotated image is missing, or its labels cannot be written).
    func restoreOutputs(of record: DetectionRecord) -> Bool {
        guard let result = record.result else { return true }
        if outputs.contains(.annotated) {
            let annotated = DetectionExports.outputPath(of: record.path, in: "annotated", extension: "jpg")
            guard FileManager.default.fileExists(atPath: output.appendingPathComponent(annotated).path) else {
                return false
            }
        }
        if outputs.contains(.yolo) {
            let labels = DetectionExports.outputPath(of: record.path, in: "labels", extension: "txt")
            guard (try? writeFile(Data(DetectionExports.yolo(result).utf8), to: labels)) != nil else { return false }
        }
        return true
    }

    /// The journal line for one answer, after writing its per-input outputs (annotated image, YOLO labels). An
    /// output that cannot be written makes the line that input's `output_failed`.
    func write(_ result: Result<DetectionResult, DetectionError>, for input: DetectionInput) -> DetectionRecord {
        switch result {
        case .success(var value):
            var relative = ""
            do {
                if let encoded = value.annotatedJPEG, let data = Data(base64Encoded: encoded) {
                    relative = DetectionExports.outputPath(of: input.path, in: "annotated", extension: "jpg")
                    try writeFile(data, to: relative)
                }
                value.annotatedJPEG = nil
                if outputs.contains(.yolo) {
                    relative = DetectionExports.outputPath(of: input.path, in: "labels", extension: "txt")
                    try writeFile(Data(DetectionExports.yolo(value).utf8), to: relative)
                }
            } catch {
                return DetectionRecord(
                    path: input.path,
                    error: DetectionError(
                        .outputFailed,
                        "cannot write \(output.appendingPathComponent(relative).path): \(Self.reason(error))"))
            }
            return DetectionRecord(path: input.path, result: value)
        case .failure(let error):
            return DetectionRecord(path: input.path, error: error)
        }
    }

    /// The system's reason for a failed write, e.g. "Is a directory".
    static func reason(_ error: any Error) -> String {
        var current: any Error = error
        while let underlying = (current as NSError).userInfo[NSUnderlyingErrorKey] as? any Error {
            current = underlying
        }
        if let posix = current as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        return (current as NSError).localizedDescription
    }

    /// COCO and the report over every input of the run (earlier, resumed lines included), in input order.
    /// Returns those records.
    func writeSummaryOutputs(_ inputs: [DetectionInput], seconds: Double) throws -> [DetectionRecord] {
        let byPath = Dictionary(DetectionJournal.read(journalURL).map { ($0.path, $0) }, uniquingKeysWith: { $1 })
        let records = inputs.compactMap { byPath[$0.path] }
        try DetectionExports.writeRunFiles(
            records, outputs, in: output,
            imageLink: { record in
                let annotated = DetectionExports.outputPath(of: record.path, in: "annotated", extension: "jpg")
                if FileManager.default.fileExists(atPath: output.appendingPathComponent(annotated).path) {
                    return annotated
                }
                return URL(fileURLWithPath: record.path).absoluteString
            }, elapsed: seconds)
        return records
    }

    func writeFile(_ data: Data, to relative: String) throws {
        try DetectionExports.write(data, to: relative, in: output)
    }

}
