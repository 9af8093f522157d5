import ArgumentParser
import Foundation
import RayLAN

/// `raylan detect` for videos, streams and `--on-cluster` datasets: the work runs on the cluster; this prints
/// its progress and results.
extension DetectCommand {
    /// Runs `body` in a task that Ctrl-C cancels (which stops the cluster side); exits 130 after a Ctrl-C.
    func cancellableByCtrlC<Value: Sendable>(_ body: @escaping @Sendable () async throws -> Value) async throws -> Value
    {
        try await Interrupt.shared.cancelling(saying: "Interrupted; the work on the cluster was stopped.", body)
    }

    /// Videos and streams, each in its own session, all at once; results to `--out` (a sub-folder per source
    /// when there are several).
    func runVideos() async throws {
        var parsed: [VideoSource] = []
        try await reportingErrors { parsed = try paths.map { try VideoSource(parsing: $0, onCluster: onCluster) } }
        let sources = parsed
        let model = try self.model ?? DeploymentOptions.defaultModel()
        // conf, iou, classes, annotate and report are the run's own (DetectionRun sets them).
        var options = VideoOptions(stride: vidStride ?? 1, tracker: track)
        if let reconnectAttempts { options.reconnectAttempts = reconnectAttempts }
        if let batchSize { options.batch = batchSize }
        if let lease { options.lease = .seconds(lease) }
        if viewing.isOn { options.previewFPS = viewFPS ?? 10 }
        if let problem = options.problem { throw ValidationError(problem + ".") }
        let videoOptions = options
        let outFolder = URL(fileURLWithPath: out ?? "raylan-out")
        let names = Self.uniqueNames(sources.map(\.name))
        let json = output.json
        try await reportingErrors {
            try await Connection.with(cluster) { (connection: Connection) in
                let service: DetectionRun.Service =
                    noDeploy
                    ? .running(
                        DetectionDeployment.defaultName(for: model),
                        model: try DetectionDeployment(model: model).modelIdentity())
                    : .deployIfNeeded(
                        try await deployment.make(model: model, name: nil, on: connection.cluster),
                        httpPort: deployment.servePort(for: connection))
                let key = try deployment.key()
                let cluster = connection.cluster
                let display = VideoProgressDisplay(json: json)
                let feed = viewing.isOn ? LiveFeed(sources: names) : nil
                let runs = zip(sources, names).map { source, name in
                    DetectionRun(
                        source: .video(source, videoOptions),
                        output: sources.count == 1 ? outFolder : outFolder.appendingPathComponent(name),
                        service: service, options: detectionOptions, outputs: outputs, key: key,
                        clusterOutput: clusterOut.map { sources.count == 1 ? $0 : $0 + "/" + name })
                }
                try await viewing.serving(feed.map { .live($0) }) {
                    try await cancellableByCtrlC {
                        // Several sources share one service and gateway: deployed once, before they start.
                        if runs.count > 1 {
                            try await runs[0].prepare(on: cluster) { display.show($0, source: names[0]) }
                        }
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            for (run, name) in zip(runs, names) {
                                group.addTask {
                                    do {
                                        try await run.run(on: cluster) { event in
                                            display.show(event, source: name)
                                            feed?.take(event, source: name)
                                        }
                                    } catch let error as OnClusterError where sources.count > 1 {
                                        // One lost stream does not end the others: it is named, and the exit code
                                        // says so.
                                        display.failed(name, error)
                                        feed?.failed(source: name, error.description)
                                    }
                                }
                            }
                            try await group.waitForAll()
                        }
                    }
                }
                if display.failures > 0 { throw ExitCode(Self.someInputsFailed) }
            }
        }
    }

    /// `--on-cluster` images: a Ray Data run on the cluster, results downloaded to `--out` when it is given.
    func runDataset() async throws {
        let model = try self.model ?? DeploymentOptions.defaultModel()
        let json = output.json
        var summary: DetectionSummary?
        try await reportingErrors {
            try await Connection.with(cluster) { (connection: Connection) in
                let deployment = try await deployment.make(model: model, name: nil, on: connection.cluster)
                // The results come to this machine only with --out.
                var settings = ClusterDatasetRun.Settings(
                    actors: actors, gpusPerActor: gpusPerActor ?? deployment.gpusPerReplica, cpusPerActor: cpusPerActor,
                    download: out != nil)
                if let batchSize { settings.batchSize = batchSize }
                if let lease { settings.lease = .seconds(lease) }
                let configured = DetectionRun(
                    source: .onCluster(paths, settings), output: URL(fileURLWithPath: out ?? "raylan-out"),
                    service: .deployIfNeeded(deployment, httpPort: self.deployment.servePort(for: connection)),
                    options: detectionOptions, outputs: outputs, resume: resume, clusterOutput: clusterOut)
                let cluster = connection.cluster
                let display = DetectProgressDisplay()
                // The view shows the lines as they come (the journal is downloaded at the end, when --out is given:
                // until then the folder may hold an earlier run's).
                let gallery =
                    viewing.isOn
                    ? RunGallery(folder: URL(fileURLWithPath: out ?? "raylan-out"), followsJournal: false) : nil
                summary = try await viewing.serving(gallery.map { .gallery($0) }) {
                    let result = try await cancellableByCtrlC {
                        try await configured.run(on: cluster) { event in
                            display.show(event)
                            if let gallery { Task { await gallery.take(event) } }
                        }
                    }
                    display.finish()
                    return result
                }
            }
        }
        guard let summary else { return }
        if json {
            try Terminal.json(summary)
        } else {
            let skipped = summary.skipped > 0 ? ", \(summary.skipped) already done" : ""
            let nodes = (summary.nodes ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
            Terminal.out(
                "\(summary.inputs) images: \(summary.succeeded) succeeded, \(summary.failed) failed\(skipped)"
                    + String(format: "; %.1f images/s", summary.imagesPerSecond)
                    + (nodes.isEmpty ? "" : " (\(nodes.joined(separator: ", ")))") + ". Results on the cluster in "
                    + "\(summary.clusterOutput ?? "?")/detections.jsonl"
                    + (summary.out.map { ", downloaded to \($0)/detections.jsonl" } ?? "") + ".")
        }
        if summary.failed > 0 { throw ExitCode(Self.someInputsFailed) }
    }

    /// The names made unique (`cam`, `cam-2`, …) for per-source folders.
    static func uniqueNames(_ names: [String]) -> [String] {
        var taken = Set<String>()
        return names.map { raw in
            let name = raw.isEmpty ? "source" : raw
            var unique = name
            var copy = 1
            while taken.contains(unique) {
                copy += 1
                unique = "\(name)-\(copy)"
            }
            taken.insert(unique)
            return unique
        }
    }
}

/// Shows video events on stderr (a status line per source on a terminal, a line per 10 s otherwise) and, with
/// `--json`, every frame's line on stdout as it arrives (with its source).
final class VideoProgressDisplay: @unchecked Sendable {
    private let lock = NSLock()
    private let json: Bool
    private var lastLine: [String: ContinuousClock.Instant] = [:]
    private(set) var failures = 0
    /// Each source's `{"source":"…",`, encoded once, not per frame.
    private var prefixes: [String: String] = [:]

    static func prefix(for source: String) -> String {
        let name = String(decoding: (try? JSONEncoder().encode(source)) ?? Data(#""?""#.utf8), as: UTF8.self)
        return #"{"source":"# + name + ","
    }

    init(json: Bool) { self.json = json }

    /// A frame's line for stdout: the session's own line (`type`, `frame`, `time`, then `detections` or `error`)
    /// with its `source` first, the session's text kept as the cluster made it rather than encoded again.
    /// `prefix` is ``prefix(for:)``'s, made once per source.
    static func line(of frame: FrameResult, prefix: String) -> String {
        let text =
            frame.text
            ?? (try? JSONEncoder().encode(frame)).map {
                #"{"type":"frame","# + String(decoding: $0.dropFirst(), as: UTF8.self)
            }
            ?? "{}"
        return prefix + text.dropFirst()
    }

    func show(_ event: DetectionEvent, source: String) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .preparing(let line): Terminal.error("  \(line)")
        case .uploading(let sent, let total):
            Terminal.error(
                "\(source): uploaded \(Formatting.bytes(Double(sent))) of \(Formatting.bytes(Double(total)))")
        case .deploying(let deployment): Terminal.error("  Deploying the detection service '\(deployment.name)'…")
        case .opened(let info):
            let size = "\(Int(info["width"]?.doubleValue ?? 0))×\(Int(info["height"]?.doubleValue ?? 0))"
            let rate = info["source_fps"]?.doubleValue.map { String(format: " at %.1f fps", $0) } ?? ""
            let kind = info["live"] == .bool(true) ? "live stream" : "video"
            Terminal.error("\(source): \(kind) \(size)\(rate) opened on the cluster.")
        case .frame(let frame):
            if json {
                if prefixes[source] == nil { prefixes[source] = Self.prefix(for: source) }
                Terminal.out(Self.line(of: frame, prefix: prefixes[source] ?? ""))
            }
        case .frames(let progress):
            let clock = ContinuousClock()
            let now = clock.now
            let interval: Duration = Terminal.stderrIsTerminal ? .milliseconds(500) : .seconds(10)
            if let last = lastLine[source], now - last < interval { return }
            lastLine[source] = now
            let processed = Int(progress["frames_processed"]?.doubleValue ?? 0)
            let total = progress["frame_count"]?.doubleValue.map { "/\(Int($0))" } ?? ""
            let fps = progress["fps"]?.doubleValue ?? 0
            let dropped = Int(progress["frames_dropped"]?.doubleValue ?? 0)
            Terminal.error(
                String(format: "%@: %d%@ frames, %.1f fps", source, processed, total, fps)
                    + (dropped > 0 ? ", \(dropped) dropped (the detector fell behind)" : ""))
        case .reconnecting(let attempt, let of, let delay, let message):
            Terminal.error(
                String(
                    format: "%@: stream broke (%@); reconnecting in %.1f s (attempt %d of %d)", source, message, delay,
                    attempt, of))
        case .reconnected(let message):
            Terminal.error("\(source): reconnected\(message.isEmpty ? "" : " (\(message))").")
        case .finished(let summary):
            guard let video = summary.video else { return }
            Terminal.error(
                String(
                    format: "%@: %d frames detected of %d read (%d dropped) in %.1f s: %.1f frames/s.", source,
                    video.framesProcessed, video.framesRead, video.framesDropped, video.seconds, video.fps))
        case .downloaded(let url): Terminal.error("\(source): downloaded \(url.path).")
        case .wrote(let url): Terminal.error("\(source): wrote \(url.path).")
        case .checking, .started, .answered, .progress, .report, .preview: break
        }
    }

    func failed(_ source: String, _ error: OnClusterError) {
        lock.lock()
        defer { lock.unlock() }
        failures += 1
        Terminal.error("\(source): Error: \(error)")
    }
}
