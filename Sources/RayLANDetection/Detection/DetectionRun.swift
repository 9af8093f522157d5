import Crypto
import Foundation
import RayLANCore
import RayLANGateway

/// What `raylan detect` runs, as a library value: images (files, folders, globs) through a detection service,
/// with a bounded number of requests in flight, into an output folder — `detections.jsonl` (one line per
/// input: its result or a named error; also the journal that ``Configuration/resume`` reads), and on request
/// COCO `annotations.json`, YOLO `labels/*.txt`, `annotated/*.jpg` and `report.html`.
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
    public enum Service: Sendable, Hashable {
        /// The running application of this name; the run fails (``ServeError`` `notDeployed`) when it is not,
        /// and with `model`, when it runs another model (``ServeError`` `modelMismatch`).
        case running(String, model: DetectionDeployment.ModelIdentity? = nil)
        /// This deployment's application, deployed first when it is not RUNNING or runs another model (by
        /// ``DetectionDeployment/ModelIdentity``: a file's SHA-256 and backend), with Serve's proxy at `httpPort`
        /// when Serve itself is not running yet.
        case deployIfNeeded(DetectionDeployment, httpPort: Int = ServeEndpoint.defaultPort)

        /// The Serve application's name.
        public var application: String {
            switch self {
            case .running(let name, _): name
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
        /// The rate as measured where the work runs, when it is not ``done`` over ``seconds``: a
        /// ``ClusterDatasetRun`` counts from the first answers, the detectors' start left out.
        public var measuredRate: Double? = nil

        /// Answered inputs per second.
        public var imagesPerSecond: Double { measuredRate ?? (seconds > 0 ? Double(done) / seconds : 0) }
        /// Seconds left at the current rate; nil before the first answer.
        public var secondsLeft: Double? {
            imagesPerSecond > 0 ? Double(total - done) / imagesPerSecond : nil
        }
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

    public init(
        inputs: [String], output: URL, service: Service, options: DetectionOptions = DetectionOptions(),
        outputs: Outputs = [], concurrency: Int = defaultConcurrency, imagesPerRequest: Int = defaultImagesPerRequest,
        resume: Bool = false,
        force: Bool = false, key: ServiceKey? = nil, maxSide: MaxSide = .auto
    ) {
        self.force = force
        self.key = key
        self.maxSide = maxSide
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
    public var journalURL: URL { output.appendingPathComponent(DetectionJournal.name) }

    /// Runs: expands the inputs, makes sure the service runs the model (deploying it for
    /// ``Service/deployIfNeeded(_:httpPort:)``), sends every input not yet answered, and writes the journal and
    /// the outputs.
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
    ///   writing the journal or the run's summary files.
    @discardableResult
    public func run(
        on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void = { _ in }
    ) async throws -> DetectionSummary {
        if case .pixels(let pixels) = maxSide, pixels < 1 { throw MaxSide.invalid(maxSide.description) }
        let (inputs, unmatched) = DetectionInput.expand(self.inputs)
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

    /// What ``Service/ensure(_:key:on:events:)`` will do, decided from Serve's status before anything is written.
    struct Plan {
        /// The model the run's lines record.
        var model: DetectionDeployment.ModelIdentity?
        /// The running application to use, or nil to deploy `deployment`.
        var application: ServeStatus.Application?
        var status: ServeStatus
        var deployment: DetectionDeployment?
        var httpPort: Int = ServeEndpoint.defaultPort

        func settings(_ options: DetectionOptions, maxSide: MaxSide) -> DetectionRecord.Settings {
            DetectionRecord.Settings(
                model: model, options: options,
                imageSize: application.map(\.deployedImageSize) ?? deployment?.imageSize, maxSide: maxSide)
        }
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
            let annotated = Self.outputPath(of: record.path, in: "annotated", extension: "jpg")
            guard FileManager.default.fileExists(atPath: output.appendingPathComponent(annotated).path) else {
                return false
            }
        }
        if outputs.contains(.yolo) {
            let labels = Self.outputPath(of: record.path, in: "labels", extension: "txt")
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
                    relative = Self.outputPath(of: input.path, in: "annotated", extension: "jpg")
                    try writeFile(data, to: relative)
                }
                value.annotatedJPEG = nil
                if outputs.contains(.yolo) {
                    relative = Self.outputPath(of: input.path, in: "labels", extension: "txt")
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
                let annotated = Self.outputPath(of: record.path, in: "annotated", extension: "jpg")
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

    /// Where an input's own output goes, relative to the output folder: `folder/<name>.<extension>`, distinct
    /// for distinct paths.
    ///
    /// The name is the input's path, extension kept, with its separators folded to `__` (`samples/a.jpg` →
    /// `samples__a.jpg.txt`; an absolute path starts with `__`). Where that fold could be ambiguous (a `..`
    /// component, one holding `__` or starting or ending with `_`) or the name would pass 255 bytes, the name
    /// ends instead with `___` and 12 hex digits of the path's SHA-256, after as much of the fold's end as fits
    /// (`x__a.jpg___0f3c…txt`). Names without a hash never hold `___`, so the two kinds never meet.
    public static func outputPath(of path: String, in folder: String, extension ext: String) -> String {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let fold = (path.hasPrefix("/") ? "__" : "") + components.joined(separator: "__")
        let isLossy =
            components.isEmpty
            || components.contains { $0 == ".." || $0.contains("__") || $0.hasPrefix("_") || $0.hasSuffix("_") }
        let plain = fold + "." + ext
        if !isLossy && plain.utf8.count <= 255 { return folder + "/" + plain }
        let digest = SHA256.hash(data: Data(path.utf8)).prefix(6).hexString
        let suffix = "___" + digest + "." + ext
        var tail = Substring(fold)
        while tail.utf8.count + suffix.utf8.count > 255 { tail = tail.dropFirst() }
        return folder + "/" + String(tail) + suffix
    }
}

extension DetectionRun.Service {
    /// The model the service must run: the deployment's (a local file hashed), or the one `running` names.
    func model() throws -> DetectionDeployment.ModelIdentity? {
        switch self {
        case .running(_, let model): model
        case .deployIfNeeded(let deployment, _): try deployment.modelIdentity()
        }
    }

    /// Reuse the application when it runs the model; else deploy it (``Service/deployIfNeeded(_:httpPort:)``)
    /// or refuse (``Service/running(_:model:)``).
    func plan(
        on cluster: RayCluster, status: ServeStatus, model: DetectionDeployment.ModelIdentity?
    ) throws -> DetectionRun.Plan {
        let running = status.applications[application].flatMap { $0.status == .running ? $0 : nil }
        switch self {
        case .running(let name, let expected):
            guard let running else { throw ServeError.notDeployed(name, on: cluster.address) }
            if let expected, running.modelIdentity != expected {
                let actual =
                    running.modelIdentity?.description ?? "unrecorded (deployed without RayLAN's model identity)"
                throw ServeError(
                    .modelMismatch, "The detection service '\(name)' runs the model \(actual), not \(expected)",
                    remedy: "Run detect without --no-deploy to redeploy it with this model, or pass the model it runs.")
            }
            return DetectionRun.Plan(model: expected ?? running.modelIdentity, application: running, status: status)
        case .deployIfNeeded(let deployment, let httpPort):
            if let running, running.modelIdentity == model {
                return DetectionRun.Plan(model: model, application: running, status: status)
            }
            return DetectionRun.Plan(model: model, status: status, deployment: deployment, httpPort: httpPort)
        }
    }

    /// A client for the service, deploying it first when the plan says so.
    func ensure(
        _ plan: DetectionRun.Plan, key: ServiceKey?, on cluster: RayCluster,
        events: @Sendable (DetectionEvent) -> Void
    ) async throws -> DetectionClient {
        guard let deployment = plan.deployment else {
            var endpoint = try cluster.serveEndpoint(for: application, in: plan.status)
            if let key { endpoint.key = key }
            return DetectionClient(cluster: cluster, endpoint: endpoint)
        }
        events(.deploying(deployment))
        if let other = plan.status.applications[deployment.name], let model = plan.model, other.modelIdentity != model {
            events(
                .preparing(
                    "'\(deployment.name)' runs \(other.modelIdentity?.description ?? "an unrecorded model"); "
                        + "redeploying it with \(model)."))
        }
        try await cluster.deploy(
            deployment, identity: plan.model, httpPort: plan.httpPort, progress: { events(.preparing($0)) })
        return try await DetectionClient(cluster: cluster, application: deployment.name, key: key)
    }
}
