import Foundation

/// What `raylan detect` runs, as a library value: images (files, folders, globs) through a detection service,
/// with a bounded number of requests in flight, into an output folder — `detections.jsonl` (one line per
/// input: its result or a named error; also the journal that ``Configuration/resume`` reads), and on request
/// COCO `annotations.json`, YOLO `labels/*.txt`, `annotated/*.jpg` and `report.html`.
///
/// ```swift
/// try await RayCluster.withConnection(to: ClusterAddress(parsing: "192.168.1.130")) { cluster in
///     let service = DetectionRun.Service.deployIfNeeded(DetectionDeployment(model: "yolo11s.pt", gpusPerReplica: 1))
///     let run = DetectionRun(inputs: ["photos/"], output: URL(fileURLWithPath: "out"), service: service)
///     let summary = try await run.run(on: cluster) { if case .answered(_, let p) = $0 { print(p.done, p.total) } }
///     print(summary.succeeded, "of", summary.inputs)
/// }
/// ```
///
/// A failed input is data, not an error: it has its line in the journal and counts in ``Summary/failed``.
public struct DetectionRun: Sendable {
    /// The service the run uses.
    public enum Service: Sendable, Hashable {
        /// The running application of this name; the run fails (``ServeError`` `notDeployed`) when it is not.
        case running(String)
        /// This deployment's application, deployed first when it is not RUNNING, with Serve's proxy at
        /// `httpPort` when Serve itself is not running yet.
        case deployIfNeeded(DetectionDeployment, httpPort: Int = ServeEndpoint.defaultPort)

        /// The Serve application's name.
        public var application: String {
            switch self {
            case .running(let name): name
            case .deployIfNeeded(let deployment, _): deployment.name
            }
        }
    }

    /// The files written besides `detections.jsonl`.
    public struct Outputs: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// `annotations.json` (COCO) over every input of the folder's journal.
        public static let coco = Outputs(rawValue: 1 << 0)
        /// `labels/<name>.txt` (YOLO) per input.
        public static let yolo = Outputs(rawValue: 1 << 1)
        /// `annotated/<name>.jpg` per input, drawn on the cluster.
        public static let annotated = Outputs(rawValue: 1 << 2)
        /// `report.html`.
        public static let report = Outputs(rawValue: 1 << 3)
    }

    /// How far the run is.
    public struct Progress: Sendable, Hashable {
        /// Inputs this run sends (those already answered in a resumed journal excluded).
        public var total: Int
        /// Inputs this run has answered so far.
        public var done: Int
        /// Of ``done``, those that failed.
        public var failed: Int
        /// Inputs already answered in the journal when resuming.
        public var skipped: Int
        /// Seconds since the first request.
        public var seconds: Double

        /// Answered inputs per second.
        public var imagesPerSecond: Double { seconds > 0 ? Double(done) / seconds : 0 }
        /// Seconds left at the current rate; nil before the first answer.
        public var secondsLeft: Double? {
            imagesPerSecond > 0 ? Double(total - done) / imagesPerSecond : nil
        }
    }

    /// What happens during a run, in order.
    public enum Event: Sendable {
        /// The service is not running and is being deployed; then one `deployStep` per step Serve reports.
        case deploying(DetectionDeployment)
        case deployStep(String)
        /// The service answers; `progress` counts what is to do (and what a resumed journal had).
        case started(Progress)
        /// One input's line was written to the journal.
        case answered(DetectionRecord, Progress)
    }

    /// The run's outcome.
    public struct Summary: Sendable, Hashable, Codable {
        /// Every input the arguments expanded to.
        public var inputs: Int
        /// Inputs with a result in the journal (resumed ones included).
        public var succeeded: Int
        /// Inputs with a named error in the journal.
        public var failed: Int
        /// Inputs already answered when resuming, not sent again.
        public var skipped: Int
        /// Wall time of the requests.
        public var seconds: Double
        /// Inputs sent by this run per second.
        public var imagesPerSecond: Double
        /// The output folder.
        public var out: String
    }

    /// Files, folders (searched recursively for `.jpg .jpeg .png .webp .bmp`) and globs.
    public var inputs: [String]
    /// The output folder; created when missing.
    public var output: URL
    /// The detection service.
    public var service: Service
    /// Score, IoU and class filter for every image. ``Outputs/annotated`` sets `annotate`. Default: the
    /// service's defaults.
    public var options: DetectionOptions
    /// Files besides the journal. Default none.
    public var outputs: Outputs
    /// Requests in flight. Default 8.
    public var concurrency: Int
    /// Images per request. Default 8.
    public var imagesPerRequest: Int
    /// Keep the journal's complete lines and send only the inputs it lacks. Default false: a new journal.
    public var resume: Bool
    /// The service key to send instead of the one the application was deployed with (read from Serve's
    /// status over the dashboard). Default nil.
    public var key: ServiceKey?

    public init(
        inputs: [String], output: URL, service: Service, options: DetectionOptions = DetectionOptions(),
        outputs: Outputs = [], concurrency: Int = 8, imagesPerRequest: Int = 8, resume: Bool = false,
        key: ServiceKey? = nil
    ) {
        self.key = key
        self.inputs = inputs
        self.output = output
        self.service = service
        self.options = options
        self.outputs = outputs
        self.concurrency = concurrency
        self.imagesPerRequest = imagesPerRequest
        self.resume = resume
    }

    /// The journal, `detections.jsonl` in the output folder.
    public var journalURL: URL { output.appendingPathComponent("detections.jsonl") }

    /// Runs: expands the inputs, makes sure the service runs (deploying it for ``Service/deployIfNeeded(_:httpPort:)``),
    /// sends every input not yet answered, and writes the journal and the outputs.
    ///
    /// - Parameter events: called with each ``Event``, from the calling task, in order.
    /// - Returns: the summary; inputs that failed are counted there, not thrown.
    /// - Throws: ``DetectionError`` (`noInput`) when an argument matches no image file, before anything is
    ///   sent or written; ``ServeError`` when the service is not running or cannot be deployed;
    ///   ``ClusterError``; an error writing the output folder.
    public func run(on cluster: RayCluster, events: @Sendable (Event) -> Void = { _ in }) async throws -> Summary {
        let (inputs, unmatched) = DetectionInput.expand(self.inputs)
        if let first = unmatched.first {
            throw DetectionError(
                .noInput,
                "'\(first)' matches no image file. Pass image files (.jpg .jpeg .png .webp .bmp), folders that "
                    + "hold some, or globs.")
        }
        let client = try await ensureService(on: cluster, events: events)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let earlier = resume ? DetectionJournal.read(journalURL) : []
        // Rewrite the journal with its complete lines only: an interrupted run may have torn the last one.
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
        for await (input, result) in client.results(
            for: todo, file: \.url, concurrency: concurrency, imagesPerRequest: imagesPerRequest, options: options)
        {
            let record = try write(result, for: input)
            try journal.append(record)
            progress.done += 1
            if !record.succeeded { progress.failed += 1 }
            progress.seconds = (clock.now - started).seconds
            events(.answered(record, progress))
        }
        progress.seconds = (clock.now - started).seconds
        let records = try writeSummaryOutputs(inputs, seconds: progress.seconds)
        let failed = records.filter { !$0.succeeded }.count
        return Summary(
            inputs: inputs.count, succeeded: records.count - failed, failed: failed, skipped: progress.skipped,
            seconds: progress.seconds, imagesPerSecond: progress.imagesPerSecond, out: output.path)
    }

    /// A client for the service, deploying it first when ``service`` says so and it is not RUNNING.
    func ensureService(on cluster: RayCluster, events: @Sendable (Event) -> Void) async throws -> DetectionClient {
        let status = try await cluster.serveStatus()
        if var endpoint = try? cluster.serveEndpoint(for: service.application, in: status) {
            if let key { endpoint.key = key }
            return DetectionClient(cluster: cluster, endpoint: endpoint)
        }
        guard case .deployIfNeeded(let deployment, let httpPort) = service else {
            throw ServeError.notDeployed(service.application, on: cluster.address)
        }
        events(.deploying(deployment))
        try await cluster.deploy(deployment, httpPort: httpPort, progress: { events(.deployStep($0)) })
        return try await DetectionClient(cluster: cluster, application: deployment.name, key: key)
    }

    /// The journal line for one answer, after writing its per-input outputs (annotated image, YOLO labels).
    func write(_ result: Result<DetectionResult, DetectionError>, for input: DetectionInput) throws -> DetectionRecord {
        switch result {
        case .success(var value):
            if let encoded = value.annotatedJPEG, let data = Data(base64Encoded: encoded) {
                try writeFile(data, to: Self.outputPath(of: input.path, in: "annotated", extension: "jpg"))
                value.annotatedJPEG = nil
            }
            if outputs.contains(.yolo) {
                try writeFile(
                    Data(DetectionExports.yolo(value).utf8),
                    to: Self.outputPath(of: input.path, in: "labels", extension: "txt"))
            }
            return DetectionRecord(path: input.path, result: value)
        case .failure(let error):
            return DetectionRecord(path: input.path, error: error)
        }
    }

    /// COCO and the report over every input of the run (earlier, resumed lines included), in input order.
    /// Returns those records.
    func writeSummaryOutputs(_ inputs: [DetectionInput], seconds: Double) throws -> [DetectionRecord] {
        let byPath = Dictionary(DetectionJournal.read(journalURL).map { ($0.path, $0) }, uniquingKeysWith: { $1 })
        let records = inputs.compactMap { byPath[$0.path] }
        if outputs.contains(.coco) {
            try writeFile(try DetectionExports.coco(records, classNames: [:]), to: "annotations.json")
        }
        if outputs.contains(.report) {
            let html = DetectionReport.html(
                records,
                imageLink: { record in
                    let annotated = Self.outputPath(of: record.path, in: "annotated", extension: "jpg")
                    if FileManager.default.fileExists(atPath: output.appendingPathComponent(annotated).path) {
                        return annotated
                    }
                    return URL(fileURLWithPath: record.path).absoluteString
                }, elapsed: seconds)
            try writeFile(Data(html.utf8), to: "report.html")
        }
        return records
    }

    func writeFile(_ data: Data, to relative: String) throws {
        let url = output.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    /// Where an input's own output goes, relative to the output folder: `folder/<path with separators
    /// folded>.<extension>`, e.g. `annotated/samples__shapes_00.jpg`.
    public static func outputPath(of path: String, in folder: String, extension ext: String) -> String {
        let base = (path as NSString).deletingPathExtension
        let flat = base.split(separator: "/").filter { $0 != "." && $0 != ".." }.joined(separator: "__")
        return folder + "/" + (flat.isEmpty ? "image" : flat) + "." + ext
    }
}
