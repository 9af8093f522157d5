import ArgumentParser
import Foundation
import RayLAN
import RayLANBench

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Measure the detection path against the model's own limit, Ultralytics' loop, the seed's pattern and naive Serve.",
        discussion: """
            In one run, on the same cluster, model and images: (1) RayLAN end to end per concurrency level \
            (images/s, latency p50/p95/p99), (2) the model's forward pass alone, (3) Ultralytics' predict loop, \
            (4) the seed's task-per-image pattern, (5) naive Ray Serve (one image per request). Each figure is \
            printed with its ratio to (1)'s best level, with the stage split, the LAN bound and client memory. \
            (1)'s best level is measured again on the other backend, over TLS (through a TLS front in this \
            process, pinned: what a head's front costs; on a cluster reached over TLS, plain HTTP is on the head's \
            loopback only, so run the benchmark there with --address 127.0.0.1 for both) and, when the client \
            shrinks JPEGs (--max-side), with the original files; the shrink's bytes per image and its agreement with the \
            original files' boxes are printed too.

            Exit codes: \(ExitCodes.summary)
            """)

    @OptionGroup var cluster: ClusterOptions
    @Option(name: .long, help: ArgumentHelp("The model (default: the shipped demo model).", valueName: "m")) var model:
        String?
    @Option(name: .long, help: ArgumentHelp("A folder of images (default: samples/).", valueName: "dir")) var images:
        String?
    @Option(name: .long, help: ArgumentHelp("Use N synthetic 640×480 BMP images instead.", valueName: "n"))
    var synthetic: Int?
    @Option(name: .long, help: ArgumentHelp("Seconds per measurement.", valueName: "s")) var duration = 10
    @Option(
        name: .long,
        help: ArgumentHelp("Concurrency levels: whole numbers ≥ 1, separated by commas.", valueName: "list"))
    var concurrency = Counts([1, 4, 8, 16, 64])
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Images per request for (1), separated by commas: 1 uses /detect, more use /detect/batch;"
                + " each at every level.",
            valueName: "list"))
    var imagesPerRequest = Counts([1, 8])
    @Option(name: .long, help: ArgumentHelp("Images for the seed's pattern (each loads the model).", valueName: "n"))
    var seedImages = 8
    @Option(name: .long, help: ArgumentHelp("Also write the report as JSON to this file.", valueName: "file")) var json:
        String?
    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var shrink: ShrinkOptions
    @Flag(
        name: .long,
        help: "Skip measuring (1)'s best level again with the other backend and with the original files.")
    var noVariants = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "With the variants: anonymous requests per second (no key) sent while (1)'s best level runs again; 0 skips it.",
            valueName: "n"))
    var anonymousRate = 200
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Replicas to try (1)'s best level with, separated by commas; each with every --sweep-max-batch.",
            valueName: "list"))
    var sweepReplicas: Counts?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Largest batches to try (1)'s best level with, separated by commas; each with every --sweep-replicas.",
            valueName: "list"))
    var sweepMaxBatch: Counts?
    @Flag(
        name: .long,
        help: "Measure the gateway (remote calls, put, get) next to Ray Client from Python instead of detection.")
    var gateway = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --gateway on a cluster given by --address: Ray Client's address (ray://HOST:10001), measured with "
                + "the local Python that has Ray.", valueName: "url"))
    var rayClient: String?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also run the images once on the cluster (--on-cluster, Ray Data) and once streamed, from copies in this "
                + "folder, which every cluster node must see at the same path (the embedded cluster's machine, or a "
                + "share).", valueName: "dir"))
    var onClusterDir: String?
    @Option(
        name: .long, help: ArgumentHelp("Images in the --on-cluster-dir run (the images repeated).", valueName: "n"))
    var onClusterImages = 240

    /// Whole numbers of 1 or more separated by commas, as `--concurrency 1,4,16` takes them.
    struct Counts: ExpressibleByArgument, CustomStringConvertible {
        var values: [Int]

        init(_ values: [Int]) { self.values = values }

        init?(argument: String) {
            let values = argument.split(separator: ",", omittingEmptySubsequences: false)
                .map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
            self.values = values.compactMap { $0 }
        }

        var description: String { values.map(String.init).joined(separator: ",") }
    }

    func validate() throws {
        try OptionCheck.atLeast(duration, 1, "--duration")
        try OptionCheck.atLeast(synthetic, 1, "--synthetic")
        try OptionCheck.atLeast(seedImages, 1, "--seed-images")
        try OptionCheck.atLeast(onClusterImages, 1, "--on-cluster-images")
        try OptionCheck.within(anonymousRate, 0...10_000, "--anonymous-rate")
        if let onClusterDir, !onClusterDir.hasPrefix("/") {
            throw ValidationError(
                "--on-cluster-dir must be an absolute path (the same on every node), not '\(onClusterDir)'.")
        }
        if synthetic != nil && images != nil { throw ValidationError("Give --images or --synthetic, not both.") }
    }

    func run() async throws {
        if gateway { return try await runGateway() }
        try await reportingErrors {
            let model = try self.model ?? DeploymentOptions.defaultModel()
            let files = try imageFiles()
            try await Connection.with(cluster) { (connection: Connection) in
                var configuration = Benchmark.Configuration(
                    deployment: try await deployment.make(model: model, name: nil, on: connection.cluster),
                    images: files,
                    duration: .seconds(duration), concurrencyLevels: concurrency.values, seedImages: seedImages,
                    imagesPerRequest: imagesPerRequest.values)
                configuration.maxSide = shrink.value
                configuration.measuresVariants = !noVariants
                configuration.anonymousRequestsPerSecond = anonymousRate
                configuration.onCluster = onClusterDir.map {
                    Benchmark.OnClusterSetting(folder: URL(fileURLWithPath: $0), images: onClusterImages)
                }
                if sweepReplicas != nil || sweepMaxBatch != nil {
                    let ownReplicas = Benchmark.setting(of: configuration.deployment).replicas
                    configuration.sweep = (sweepReplicas?.values ?? [ownReplicas]).flatMap { replicas in
                        (sweepMaxBatch?.values ?? [configuration.deployment.maxBatch]).map {
                            Benchmark.Setting(replicas: replicas, maxBatch: $0)
                        }
                    }
                }
                let port = deployment.servePort(for: connection)
                let report = try await Benchmark(
                    cluster: connection.cluster, configuration: configuration, servePort: port
                )
                .run(progress: { Terminal.error("… \($0)") })
                Self.print(report)
                try write(report)
            }
        }
    }

    /// Writes the report as JSON to `--json FILE`, when given.
    func write<Report: Encodable>(_ report: Report) throws {
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: json))
    }

    /// `--gateway`: the gateway's figures next to Ray Client's, with the targets' verdicts.
    func runGateway() async throws {
        try await reportingErrors {
            try await Connection.with(cluster) { (connection: Connection) in
                let cluster = connection.cluster
                let endpoint = try await cluster.deployGateway(
                    httpPort: connection.defaultServePort, progress: { Terminal.error($0) })
                var side: GatewayBenchmark.RayClientSide?
                if let python = try? RayEnvironment.locate().python {
                    if let local = connection.local {
                        side = .init(
                            python: python, target: ["--gcs", "127.0.0.1:\(local.ports.gcs)"],
                            environment: (try local.token()).map { ["RAY_AUTH_TOKEN": $0.value] } ?? [:])
                    } else if let rayClient {
                        side = .init(python: python, target: ["--address", rayClient])
                    }
                }
                let benchmark = GatewayBenchmark(
                    gateway: Gateway(cluster: cluster, endpoint: endpoint),
                    configuration: .init(duration: .seconds(duration), rayClient: side))
                let report = try await benchmark.run(progress: { Terminal.error("… \($0)") })
                Self.print(report)
                try write(report)
            }
        }
    }

    static func print(_ report: GatewayBenchmark.Report) {
        func f(_ value: Double) -> String {
            value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
        }
        Terminal.out("Gateway vs Ray Client, Ray \(report.rayVersion), \(report.date)")
        var rows: [[String]] = []
        for ours in report.gateway.calls {
            let theirs = report.rayClient?.calls.first { $0.inFlight == ours.inFlight }
            rows.append([
                "no-op call, \(ours.inFlight) in flight",
                "\(f(ours.p50Ms)) / \(f(ours.p99Ms)) ms, \(f(ours.callsPerSecond))/s",
                theirs.map { "\(f($0.p50Ms)) / \(f($0.p99Ms)) ms, \(f($0.callsPerSecond))/s" } ?? "—",
            ])
        }
        for ours in report.gateway.transfers {
            let theirs = report.rayClient?.transfers.first { $0.bytes == ours.bytes }
            rows.append([
                "put / get \(GatewayBenchmark.megabytes(ours.bytes))",
                "\(f(ours.putMBPerSecond)) / \(f(ours.getMBPerSecond)) MB/s",
                theirs.map { "\(f($0.putMBPerSecond)) / \(f($0.getMBPerSecond)) MB/s" } ?? "—",
            ])
        }
        let via = report.rayClient?.via.map { " (\($0))" } ?? ""
        for line in Terminal.table(["MEASURE", "GATEWAY (p50 / p99, rate)", "RAY CLIENT\(via)"], rows) {
            Terminal.out(line)
        }
        if let skipped = report.rayClientSkipped { Terminal.out("Ray Client not measured: \(skipped)") }
        for target in report.targets {
            Terminal.out(
                "\(target.holds ? "MET " : "MISS") \(target.name): \(String(format: "%.2f", target.ratio)) (target \(target.bound))"
            )
        }
    }

    func imageFiles() throws -> [URL] {
        if let synthetic {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                "raylan-bench-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            return try (0..<synthetic).map { index in
                let url = folder.appendingPathComponent(String(format: "synthetic_%05d.bmp", index))
                try Self.noiseBMP(width: 640, height: 480, seed: UInt64(index)).write(to: url)
                return url
            }
        }
        let folder =
            try images
            ?? ClusterCode.locate().directory.deletingLastPathComponent().appendingPathComponent("samples").path
        let (inputs, missing) = DetectionInput.expand([folder])
        if !missing.isEmpty {
            throw ValidationError("'\(folder)' holds no images. Pass a folder of images, or --synthetic N.")
        }
        return inputs.map(\.url)
    }

    /// A 24-bit BMP of smooth random colour, made without any image library.
    static func noiseBMP(width: Int, height: Int, seed: UInt64) -> Data {
        let rowBytes = (width * 3 + 3) & ~3
        let size = 54 + rowBytes * height
        var data = Data(capacity: size)
        func le32(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ value: Int) { withUnsafeBytes(of: UInt16(value).littleEndian) { data.append(contentsOf: $0) } }
        data.append(contentsOf: [0x42, 0x4D]); le32(size); le32(0); le32(54)
        le32(40); le32(width); le32(height); le16(1); le16(24); le32(0); le32(rowBytes * height); le32(2835);
        le32(2835); le32(0); le32(0)
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        var row = [UInt8](repeating: 0, count: rowBytes)
        for y in 0..<height {
            for x in 0..<width {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let noise = UInt8(truncatingIfNeeded: state >> 58)
                row[x * 3] = UInt8(truncatingIfNeeded: x / 3) &+ noise
                row[x * 3 + 1] = UInt8(truncatingIfNeeded: y / 2) &+ noise
                row[x * 3 + 2] = UInt8(truncatingIfNeeded: (x + y) / 5 + Int(seed) * 37)
            }
            data.append(contentsOf: row)
        }
        return data
    }

    static func print(_ report: BenchmarkReport) {
        func f(_ value: Double) -> String {
            value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
        }
        func r(_ value: Double?) -> String { value.map { String(format: "%.2f×", $0) } ?? "—" }
        Terminal.out(
            "RayLAN bench \(report.date) · model \(report.model)\(report.imageSize.map { " (imgsz \($0))" } ?? "") · "
                + "\(report.images) images, \(f(report.bytesPerImage / 1024)) KiB each")
        Terminal.out(
            "cluster device \(report.clusterDevice ?? "?") · Ray \(report.rayVersion) · Python \(report.pythonVersion ?? "?") · "
                + "client \(report.clientCPUs) CPUs · "
                + report.knobs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        Terminal.out("")
        let best = report.bestEndToEnd?.imagesPerSecond ?? 0
        var rows: [[String]] = []
        for level in report.endToEnd {
            rows.append([
                "(1) RayLAN end to end, \(level.concurrency) in flight"
                    + (level.imagesPerRequest > 1 ? " × \(level.imagesPerRequest)" : ""), f(level.imagesPerSecond),
                r(best > 0 ? level.imagesPerSecond / best : nil),
                f(level.latencyP50Ms), f(level.latencyP95Ms), f(level.latencyP99Ms),
                "batch ≤ \(level.largestBatch)" + (level.failures > 0 ? ", \(level.failures) failed" : ""),
            ])
        }
        if let reference = report.modelOnly {
            rows.append([
                "(2) model only, best batch \(reference.details["best_batch"]?.doubleValue.map { String(Int($0)) } ?? "?")",
                f(reference.imagesPerSecond), r(reference.ratioToRayLAN), "", "", "", "",
            ])
        }
        if let reference = report.ultralyticsLoop {
            rows.append([
                "(3) Ultralytics predict loop, batch \(report.knobs["max_batch"] ?? "?")", f(reference.imagesPerSecond),
                r(reference.ratioToRayLAN), "", "", "", "",
            ])
        }
        if let reference = report.seedPattern {
            rows.append([
                "(4) seed's pattern (task per image)", f(reference.imagesPerSecond), r(reference.ratioToRayLAN), "", "",
                "", "",
            ])
        }
        for variant in report.variants ?? [] {
            let level = variant.level
            rows.append([
                "(1) at its best level, \(variant.what)", f(level.imagesPerSecond), r(variant.ratioToRayLAN),
                f(level.latencyP50Ms), f(level.latencyP95Ms), f(level.latencyP99Ms), "batch ≤ \(level.largestBatch)",
            ])
        }
        if let naive = report.naiveServe {
            rows.append([
                "(5) naive Ray Serve, \(naive.concurrency) in flight", f(naive.imagesPerSecond),
                r(report.naiveServeRatio),
                f(naive.latencyP50Ms), f(naive.latencyP95Ms), f(naive.latencyP99Ms), "",
            ])
        }
        Terminal.table(["WHAT", "IMAGES/S", "VS (1)", "P50 MS", "P95 MS", "P99 MS", ""], rows).forEach(Terminal.out)
        if let perBatch = report.modelOnly?.details["images_per_second"], case .object(let values) = perBatch {
            Terminal.out(
                "model only per batch size: "
                    + values.sorted { Int($0.key) ?? 0 < Int($1.key) ?? 0 }
                    .map { "\($0.key): \(f($0.value.doubleValue ?? 0))" }.joined(separator: ", ") + " images/s")
        }
        Terminal.out(
            "stage split at the best level (ms/image): "
                + ["queue", "decode", "preprocess", "inference", "postprocess", "transport"]
                .compactMap { stage in report.stageSplitMs[stage].map { "\(stage) \(f($0))" } }.joined(separator: ", "))
        if let level = report.detectDefaults {
            Terminal.out(
                "raylan detect's defaults (\(level.concurrency) in flight × \(level.imagesPerRequest) images, replicas "
                    + "\(report.knobs["replicas"] ?? "?") × \(report.knobs["cpus_per_replica"] ?? "?") CPU, batch "
                    + "\(report.knobs["max_batch"] ?? "?")): \(f(level.imagesPerSecond)) images/s = "
                    + "\(r(report.detectDefaultsVsUltralytics)) Ultralytics' predict loop")
        }
        if let bestSetting = report.bestSetting {
            Terminal.out("best replicas × batch: \(bestSetting)")
        }
        if let figure = report.onCluster {
            var onCluster = figure.onClusterImagesPerSecond.map { "\(f($0)) images/s" } ?? "not measured"
            if let seconds = figure.onClusterSeconds, let startup = figure.onClusterStartupSeconds {
                onCluster += " (\(f(seconds)) s, of which \(f(startup)) s the actors' start and model load)"
            }
            Terminal.out(
                "(6) the same \(figure.images) images: on the cluster (Ray Data) \(onCluster), streamed through the "
                    + "service \(f(figure.streamedImagesPerSecond)) images/s (\(r(figure.ratio)))"
                    + (figure.skipped.map { "; \($0)" } ?? ""))
        }
        if let backend = report.backend {
            Terminal.out("backend: \(backend) (\(report.backendReason ?? "?"))")
        }
        if let shrink = report.shrink {
            let agreement = shrink.agreement
            Terminal.out(
                "client shrink to \(shrink.maxSide) px: \(f(shrink.originalBytesPerImage / 1024)) → "
                    + "\(f(shrink.sentBytesPerImage / 1024)) KiB/image (\(String(format: "%.1f", shrink.byteRatio))× fewer "
                    + "bytes); boxes agree with the original files' \(agreement.matched)/\(agreement.reference) = "
                    + String(format: "%.1f%%", agreement.share * 100) + " (same class, IoU ≥ 0.9)")
        }
        Terminal.out(
            "LAN bound at \(f((report.shrink?.sentBytesPerImage ?? report.bytesPerImage) / 1024)) KiB/image sent: 1 GbE ≈ \(f(report.lanBoundImagesPerSecond["1GbE"] ?? 0)) images/s, "
                + "10 GbE ≈ \(f(report.lanBoundImagesPerSecond["10GbE"] ?? 0)) images/s")
        Terminal.out(
            "client RSS: \(f(report.clientRSSStartMiB)) MiB at start, \(f(report.clientRSSEndMiB)) MiB at the end")
    }
}
