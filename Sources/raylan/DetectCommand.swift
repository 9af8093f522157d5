import ArgumentParser
import Foundation
import RayLAN

struct DetectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Detect objects in images with the cluster's detection service.",
        discussion: """
            PATH: image files, folders (searched recursively for .jpg .jpeg .png .webp .bmp) and globs. The \
            service is deployed first when it is not running (unless --no-deploy). Results go to --out: \
            detections.jsonl always (one line per input: its result or a named error; also the journal that \
            --resume reads), annotations.json with --format coco, labels/*.txt with --format yolo, \
            annotated/*.jpg with --annotate (drawn on the cluster), report.html with --report.

            Exit codes: 0 every input succeeded; 5 some inputs failed (each named in detections.jsonl); \
            \(ExitCodes.summary)
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case json, coco, yolo }

    @OptionGroup var cluster: ClusterOptions
    @Argument(help: ArgumentHelp("Images, folders or globs.", valueName: "path")) var paths: [String] = []
    @Option(name: .long, help: ArgumentHelp("The model (default: the shipped demo model).", valueName: "m")) var model: String?
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Lowest score kept. Default 0.25.", valueName: "c")) var conf = "0.25"
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("NMS IoU threshold. Default 0.7.", valueName: "i")) var iou = "0.7"
    @Option(name: .long, help: ArgumentHelp("Only these class ids, comma-separated.", valueName: "ids")) var classes: String?
    @Option(name: .long, help: ArgumentHelp("Output folder. Default raylan-out.", valueName: "dir")) var out = "raylan-out"
    @Option(name: .long, help: "Label format besides detections.jsonl: json (none), coco or yolo.") var format: Format = .json
    @Flag(name: .long, help: "Write annotated images (drawn on the cluster).") var annotate = false
    @Flag(name: .long, help: "Write report.html.") var report = false
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Requests in flight. Default 8.", valueName: "n")) var concurrency = "8"
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Images per request (one request costs the Serve proxy and the service less than several). Default 8.", valueName: "n"))
    var imagesPerRequest = "8"
    @Flag(name: .long, help: "Skip inputs already answered in --out's detections.jsonl.") var resume = false
    @Flag(name: .long, help: "Fail instead of deploying the service when it is not running.") var noDeploy = false
    @Flag(name: .long, help: "Print the run's summary as JSON.") var json = false
    @OptionGroup var deployment: DeploymentOptions

    struct Summary: Encodable {
        var inputs: Int
        var succeeded: Int
        var failed: Int
        var skipped: Int
        var seconds: Double
        var imagesPerSecond: Double
        var out: String
    }

    func options() throws -> (DetectionOptions, Int) {
        guard let confidence = Double(conf), (0...1).contains(confidence) else {
            throw ValidationError("--conf must be a number from 0 to 1, not '\(conf)'.")
        }
        guard let iouValue = Double(iou), (0...1).contains(iouValue) else {
            throw ValidationError("--iou must be a number from 0 to 1, not '\(iou)'.")
        }
        var ids: [Int]?
        if let classes {
            ids = try classes.split(separator: ",").map {
                guard let id = Int($0.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                    throw ValidationError("--classes takes class ids separated by commas, e.g. --classes 0,2; '\($0)' is not one.")
                }
                return id
            }
        }
        guard let limit = Int(concurrency), limit >= 1 else {
            throw ValidationError("--concurrency must be a whole number of 1 or more, not '\(concurrency)'.")
        }
        guard Int(imagesPerRequest).map({ (1...256).contains($0) }) == true else {
            throw ValidationError("--images-per-request must be a whole number from 1 to 256, not '\(imagesPerRequest)'.")
        }
        return (DetectionOptions(confidence: confidence, iou: iouValue, classes: ids, annotate: annotate), limit)
    }

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("Give at least one image, folder or glob, e.g. 'raylan detect samples/'.") }
        _ = try options()
    }

    func run() async throws {
        try await reportingErrors {
            let (options, limit) = try options()
            let (inputs, missing) = InputExpansion.expand(paths)
            if let first = missing.first {
                throw ValidationError("'\(first)' matches no image file. Pass image files (.jpg .jpeg .png .webp .bmp), folders that hold some, or globs.")
            }
            let outURL = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
            let journalURL = outURL.appendingPathComponent("detections.jsonl")
            let earlier = resume ? DetectionJournal.read(journalURL) : []
            // Rewrite the journal with its complete lines only: an interrupted run may have torn the last one.
            try? FileManager.default.removeItem(at: journalURL)
            if !earlier.isEmpty {
                let rewrite = try DetectionJournal(url: journalURL)
                for record in earlier { try rewrite.append(record) }
            }
            let answered = Set(earlier.map(\.path))
            let todo = inputs.filter { !answered.contains($0.path) }
            let model = try self.model ?? DeploymentOptions.defaultModel()
            let application = DetectionDeployment.defaultName(for: model)

            try await Connection.with(cluster) { (connection: Connection) in
                let cluster = connection.cluster
                let status = try await cluster.serveStatus()
                if status.applications[application]?.status != .running {
                    if noDeploy {  // the client's own error says it is not running and how to deploy it
                        _ = try await DetectionClient(cluster: cluster, application: application)
                    }
                    _ = try await deployment.deploy(model: model, name: nil, on: connection)
                }
                let client = try await DetectionClient(cluster: cluster, application: application)
                let journal = try DetectionJournal(url: journalURL)
                let progress = Progress(total: todo.count, skipped: inputs.count - todo.count)
                let started = ContinuousClock.now
                let pathOf = Dictionary(todo.map { ($0.url, $0.path) }, uniquingKeysWith: { first, _ in first })
                for await (file, result) in client.results(
                    for: todo.map(\.url), concurrency: limit, imagesPerRequest: Int(imagesPerRequest) ?? 1, options: options) {
                    let path = pathOf[file] ?? file.path
                    var record = DetectionRecord(path: path)
                    switch result {
                    case .success(var value):
                        if let encoded = value.annotatedJPEG, let data = Data(base64Encoded: encoded) {
                            try writeFile(data, to: "annotated/" + Self.flatName(path, extension: "jpg"))
                            value.annotatedJPEG = nil
                        }
                        if format == .yolo {
                            try writeFile(Data(DetectionExports.yolo(value).utf8), to: "labels/" + Self.flatName(path, extension: "txt"))
                        }
                        record.result = value
                    case .failure(let error):
                        record.error = error
                    }
                    try journal.append(record)
                    progress.step(succeeded: record.succeeded)
                }
                let seconds = Double((ContinuousClock.now - started).components.seconds)
                    + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                progress.finish(seconds: seconds)

                // Outputs over every input of the run (earlier, resumed lines included), in input order.
                let byPath = Dictionary(DetectionJournal.read(journalURL).map { ($0.path, $0) }, uniquingKeysWith: { $1 })
                let records = inputs.compactMap { byPath[$0.path] }
                if format == .coco {
                    try writeFile(try DetectionExports.coco(records, classNames: [:]), to: "annotations.json")
                }
                if report {
                    let html = DetectionReport.html(records, imageLink: { record in
                        let annotated = "annotated/" + Self.flatName(record.path, extension: "jpg")
                        if FileManager.default.fileExists(atPath: outURL.appendingPathComponent(annotated).path) { return annotated }
                        return URL(fileURLWithPath: record.path).absoluteString
                    }, elapsed: seconds)
                    try writeFile(Data(html.utf8), to: "report.html")
                }
                let failed = records.filter { !$0.succeeded }.count
                let summary = Summary(
                    inputs: inputs.count, succeeded: records.count - failed, failed: failed, skipped: inputs.count - todo.count,
                    seconds: seconds, imagesPerSecond: seconds > 0 ? Double(todo.count) / seconds : 0, out: outURL.path)
                if json { try Terminal.json(summary) } else {
                    Terminal.out(
                        "\(summary.inputs) inputs: \(summary.succeeded) succeeded, \(summary.failed) failed"
                            + (summary.skipped > 0 ? ", \(summary.skipped) already done" : "")
                            + String(format: "; %.1f images/s. Results in %@", summary.imagesPerSecond, outURL.appendingPathComponent("detections.jsonl").path))
                }
                if failed > 0 { throw ExitCode(5) }
            }
        }
    }

    func writeFile(_ data: Data, to relative: String) throws {
        let url = URL(fileURLWithPath: out).appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    /// A file name for an input's output: its path with separators folded, so names never collide.
    static func flatName(_ path: String, extension ext: String) -> String {
        let base = (path as NSString).deletingPathExtension
        let flat = base.split(separator: "/").filter { $0 != "." && $0 != ".." }.joined(separator: "__")
        return (flat.isEmpty ? "image" : flat) + "." + ext
    }
}

/// Progress: a bar with images/s and ETA on a terminal (stderr), a line per 10% otherwise.
final class Progress: @unchecked Sendable {
    let total: Int
    let skipped: Int
    var done = 0
    var failed = 0
    let start = ContinuousClock.now
    var lastDecile = 0

    init(total: Int, skipped: Int) {
        self.total = total
        self.skipped = skipped
        if skipped > 0 { Terminal.error("Resuming: \(skipped) inputs already answered, \(total) to go.") }
    }

    func step(succeeded: Bool) {
        done += 1
        if !succeeded { failed += 1 }
        let elapsed = Double((ContinuousClock.now - start).components.seconds) + Double((ContinuousClock.now - start).components.attoseconds) / 1e18
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        if Terminal.stderrIsTerminal {
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data(String(format: "\r%@ %d/%d  %.1f img/s  ETA %.0f s  %d failed ", bar, done, total, rate, eta, failed).utf8))
        } else {
            let decile = total > 0 ? 10 * done / total : 10
            if decile > lastDecile || done == total {
                lastDecile = decile
                Terminal.error(String(format: "%d/%d images (%.1f img/s, %d failed)", done, total, rate, failed))
            }
        }
    }

    func finish(seconds: Double) {
        if Terminal.stderrIsTerminal && total > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// PATH arguments to image files: files as given, folders recursively, globs expanded.
enum InputExpansion {
    static let extensions: Set<String> = ["jpg", "jpeg", "png", "webp", "bmp"]

    struct Input: Hashable {
        var path: String
        var url: URL
    }

    /// The inputs in a stable order, and the arguments that matched nothing.
    static func expand(_ arguments: [String]) -> ([Input], [String]) {
        var inputs: [Input] = []
        var seen = Set<String>()
        var missing: [String] = []
        let fileManager = FileManager.default
        for argument in arguments {
            var found: [String] = []
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: argument, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let enumerator = fileManager.enumerator(atPath: argument)
                    while let relative = enumerator?.nextObject() as? String {
                        if extensions.contains((relative as NSString).pathExtension.lowercased()) {
                            found.append((argument as NSString).appendingPathComponent(relative))
                        }
                    }
                    found.sort()
                } else {
                    found.append(argument)  // a named file is always tried, whatever its extension
                }
            } else if argument.contains("*") || argument.contains("?") || argument.contains("[") {
                found = glob(argument).filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            }
            if found.isEmpty { missing.append(argument) }
            for path in found where seen.insert(path).inserted {
                inputs.append(Input(path: path, url: URL(fileURLWithPath: path)))
            }
        }
        return (inputs, missing)
    }

    static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Foundation.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { index in
            result.gl_pathv[index].map { String(cString: $0) }
        }.sorted()
    }
}
