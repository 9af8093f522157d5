#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// `raylan bench`: RayLAN's end-to-end detection rate next to the model's own limit, Ultralytics' predict
/// loop, the seed's task-per-image pattern and naive Ray Serve — same cluster, model and images, one run.
public struct Benchmark: Sendable {
    /// Default: the knobs of ``DetectionDeployment``, 10 s per level, levels 1, 4, 16, 64.
    public struct Configuration: Sendable {
        public var deployment: DetectionDeployment
        public var images: [URL]
        public var duration: Duration
        public var concurrencyLevels: [Int]
        /// Images the seed's pattern runs (each loads the model). Default 8.
        public var seedImages: Int

        public init(
            deployment: DetectionDeployment, images: [URL], duration: Duration = .seconds(10),
            concurrencyLevels: [Int] = [1, 4, 16, 64], seedImages: Int = 8
        ) {
            self.deployment = deployment
            self.images = images
            self.duration = duration
            self.concurrencyLevels = concurrencyLevels
            self.seedImages = seedImages
        }
    }

    public let cluster: RayCluster
    public let configuration: Configuration
    public let servePort: Int

    public init(cluster: RayCluster, configuration: Configuration, servePort: Int = 8000) {
        self.cluster = cluster
        self.configuration = configuration
        self.servePort = servePort
    }

    /// Runs every measurement. `progress` gets one line per step.
    public func run(code: ClusterCode? = nil, progress: @Sendable (String) -> Void = { _ in }) async throws -> BenchmarkReport {
        let rssStart = Self.residentMiB()
        let code = try code ?? ClusterCode.locate()
        let deployment = configuration.deployment
        let info = try await cluster.serverInfo()
        let images = try configuration.images.map { try Data(contentsOf: $0) }
        guard !images.isEmpty else { throw ServeError(.invalidModel, "No images to benchmark with.") }
        let bytesPerImage = Double(images.reduce(0) { $0 + $1.count }) / Double(images.count)

        // 1. The references, as Ray jobs (before the services hold the GPU).
        let extra = configuration.images.enumerated().map { ($0.element, "bench_images/\(String(format: "%05d", $0.offset)).\($0.element.pathExtension)") }
        let staged = try code.stage(model: deployment.isLocalFile ? deployment.model : nil, extra: extra)
        defer { try? FileManager.default.removeItem(at: staged.folder) }
        let modelArgument = staged.modelArgument ?? deployment.model
        let imgsz = deployment.imageSize.map { " --imgsz \($0)" } ?? ""
        let seconds = Double(configuration.duration.components.seconds)
        let gpu = deployment.gpusPerReplica > 0
        let batches = Set([1, deployment.maxBatch, 32, 128]).sorted().map(String.init).joined(separator: ",")
        progress("Model-only limit (forward pass alone)…")
        let modelOnly = try await reference(
            "python -m raylan_bench.run --mode model_only --model \(modelArgument)\(imgsz) --batches \(batches) --seconds \(max(seconds / 4, 2))",
            folder: staged.folder, gpus: gpu ? 1 : 0)
        progress("Ultralytics' own predict loop…")
        let ultralytics = try await reference(
            "python -m raylan_bench.run --mode ultralytics --model \(modelArgument)\(imgsz) --batch \(deployment.maxBatch) --seconds \(seconds)",
            folder: staged.folder, gpus: gpu ? 1 : 0)
        progress("The seed's pattern (a Ray task per image, loading the model each time)…")
        let seed = try await reference(
            "python -m raylan_bench.run --mode seed --model \(modelArgument)\(imgsz) --limit \(configuration.seedImages) --gpus \(gpu ? 1 : 0)",
            folder: staged.folder, gpus: 0)

        // 2. RayLAN end to end, per concurrency level.
        progress("Deploying the detection service…")
        try await cluster.deploy(deployment, code: code, httpPort: servePort)
        let client = try await DetectionClient(cluster: cluster, application: deployment.name)
        var levels: [BenchmarkReport.Level] = []
        var stageSums: [String: Double] = [:]
        var clientLatency = 0.0
        var stageCount = 0
        for concurrency in configuration.concurrencyLevels {
            progress("RayLAN end to end, \(concurrency) in flight…")
            let measured = try await Self.drive(client, images: images, concurrency: concurrency, duration: configuration.duration)
            levels.append(measured.level)
            if measured.level.imagesPerSecond >= (levels.map(\.imagesPerSecond).max() ?? 0) {
                stageSums = measured.stageSums
                clientLatency = measured.meanLatency
                stageCount = measured.level.images
            }
        }
        let best = levels.max { $0.imagesPerSecond < $1.imagesPerSecond }

        // 3. Naive Ray Serve at the best level's concurrency.
        progress("Naive Ray Serve (one image per request, no batching)…")
        var naive = deployment
        naive.name = deployment.name + "-naive"
        naive.isNaive = true
        try await cluster.deploy(naive, code: code, httpPort: servePort)
        let naiveClient = try await DetectionClient(cluster: cluster, application: naive.name)
        let naiveLevel = try await Self.drive(
            naiveClient, images: images, concurrency: best?.concurrency ?? 1, duration: configuration.duration
        ).level
        try await cluster.deleteServeApplication(naive.name)

        let rate = best?.imagesPerSecond ?? 0
        func ratio(_ value: Double) -> Double? { rate > 0 ? value / rate : nil }
        func make(_ answer: JSONValue, _ key: String) -> BenchmarkReport.Reference {
            let value = answer[key]?.doubleValue ?? 0
            return .init(imagesPerSecond: value, ratioToRayLAN: ratio(value), details: answer)
        }
        var split = stageCount > 0 ? stageSums.mapValues { $0 / Double(stageCount) } : [:]
        if let total = split["total"] { split["transport"] = max(clientLatency - total, 0) }
        var knobs = [
            "max_batch": String(deployment.maxBatch), "batch_wait_ms": String(deployment.batchWaitMilliseconds),
            "gpus_per_replica": String(deployment.gpusPerReplica),
        ]
        switch deployment.replicas {
        case .fixed(let count): knobs["replicas"] = String(count)
        case .auto(let low, let high): knobs["replicas"] = "auto \(low)-\(high)"
        }
        let formatter = ISO8601DateFormatter()
        return BenchmarkReport(
            date: formatter.string(from: Date()), model: deployment.model,
            imageSize: deployment.imageSize ?? modelOnly["imgsz"]?.doubleValue.map { Int($0) },
            images: images.count, bytesPerImage: bytesPerImage, clusterDevice: modelOnly["device"]?.stringValue,
            rayVersion: info.rayVersion.description, pythonVersion: info.pythonVersion,
            clientCPUs: ProcessInfo.processInfo.activeProcessorCount, knobs: knobs, endToEnd: levels, bestEndToEnd: best,
            modelOnly: make(modelOnly, "best_images_per_second"), ultralyticsLoop: make(ultralytics, "images_per_second"),
            seedPattern: make(seed, "images_per_second"), naiveServe: naiveLevel, naiveServeRatio: ratio(naiveLevel.imagesPerSecond),
            stageSplitMs: split,
            lanBoundImagesPerSecond: ["1GbE": 125_000_000 / bytesPerImage, "10GbE": 1_250_000_000 / bytesPerImage],
            clientRSSStartMiB: rssStart, clientRSSEndMiB: Self.residentMiB())
    }

    /// Runs a `raylan_bench.run` job and returns its `RAYLAN_BENCH` JSON.
    func reference(_ entrypoint: String, folder: URL, gpus: Double) async throws -> JSONValue {
        var spec = JobSpec(entrypoint: entrypoint, workingDirectory: folder)
        spec.resources.gpus = gpus > 0 ? gpus : nil
        spec.environment = ["YOLO_AUTOINSTALL": "false"]
        return try await cluster.runForResult(spec, marker: "RAYLAN_BENCH", timeout: .seconds(1800))
    }

    struct Measured {
        var level: BenchmarkReport.Level
        var stageSums: [String: Double]
        var meanLatency: Double
    }

    /// Keeps `concurrency` requests in flight for `duration`, cycling through `images`.
    static func drive(_ client: DetectionClient, images: [Data], concurrency: Int, duration: Duration) async throws -> Measured {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: duration)
        let counter = LockedBox(0)
        let results = await withTaskGroup(of: [(Double, DetectionResult?)].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var mine: [(Double, DetectionResult?)] = []
                    while clock.now < deadline {
                        let index = counter.withLock { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        let sent = clock.now
                        let result = try? await client.detect(images[index % images.count])
                        let elapsed = sent.duration(to: clock.now)
                        mine.append((Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15, result))
                    }
                    return mine
                }
            }
            var all: [(Double, DetectionResult?)] = []
            for await part in group { all += part }
            return all
        }
        let wall = start.duration(to: clock.now)
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let ok = results.filter { $0.1 != nil }
        let latencies = ok.map(\.0).sorted()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        var sums: [String: Double] = [:]
        for (_, result) in ok { for (stage, ms) in result!.timingsMs { sums[stage, default: 0] += ms } }
        let level = BenchmarkReport.Level(
            concurrency: concurrency, images: ok.count, failures: results.count - ok.count,
            imagesPerSecond: Double(ok.count) / seconds, latencyP50Ms: percentile(0.5), latencyP95Ms: percentile(0.95),
            latencyP99Ms: percentile(0.99), largestBatch: ok.compactMap { $0.1?.batchSize }.max() ?? 0)
        return Measured(level: level, stageSums: sums, meanLatency: latencies.isEmpty ? 0 : latencies.reduce(0, +) / Double(latencies.count))
    }

    /// This process's resident memory in MiB (Linux: /proc; elsewhere the peak from getrusage).
    static func residentMiB() -> Double {
        #if os(Linux)
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = Double(statm.split(separator: " ").dropFirst().first ?? "")
        {
            return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
        }
        #endif
        var usage = rusage()
        #if canImport(Darwin)
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / 1_048_576
        #elseif canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss) / 1024
        #endif
    }
}
