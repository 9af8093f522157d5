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
        /// Images per request for (1): 1 uses `/detect`, more use `/detect/batch`; each is measured at every
        /// concurrency level. Default [1, 8].
        public var imagesPerRequest: [Int]

        public init(
            deployment: DetectionDeployment, images: [URL], duration: Duration = .seconds(10),
            concurrencyLevels: [Int] = [1, 4, 16, 64], seedImages: Int = 8, imagesPerRequest: [Int] = [1, 8]
        ) {
            self.imagesPerRequest = imagesPerRequest
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
        for perRequest in configuration.imagesPerRequest {
        for concurrency in configuration.concurrencyLevels {
            progress("RayLAN end to end, \(concurrency) in flight\(perRequest > 1 ? " × \(perRequest) images per request" : "")…")
            let measured = try await Self.drive(
                client, images: images, concurrency: concurrency, imagesPerRequest: perRequest, duration: configuration.duration)
            levels.append(measured.level)
            if measured.level.imagesPerSecond >= (levels.map(\.imagesPerSecond).max() ?? 0) {
                stageSums = measured.stageSums
                clientLatency = measured.meanLatency
                stageCount = measured.level.images
            }
        }
        }
        let best = levels.max { $0.imagesPerSecond < $1.imagesPerSecond }

        // 3. Naive Ray Serve with as many images in flight as the best level.
        progress("Naive Ray Serve (one image per request, no batching)…")
        var naive = deployment
        naive.name = deployment.name + "-naive"
        naive.isNaive = true
        try await cluster.deploy(naive, code: code, httpPort: servePort)
        let naiveClient = try await DetectionClient(cluster: cluster, application: naive.name)
        let naiveLevel = try await Self.drive(
            naiveClient, images: images, concurrency: (best?.concurrency ?? 1) * (best?.imagesPerRequest ?? 1),
            duration: configuration.duration
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

    /// Keeps `concurrency` requests of `imagesPerRequest` images in flight for `duration`, cycling through
    /// `images`. Only running sums and one latency per request are kept, so memory stays flat however long
    /// it runs.
    static func drive(
        _ client: DetectionClient, images: [Data], concurrency: Int, imagesPerRequest: Int = 1, duration: Duration
    ) async throws -> Measured {
        struct Tally: Sendable {
            var latencies: [Double] = []
            var ok = 0
            var failed = 0
            var largestBatch = 0
            var stageSums: [String: Double] = [:]
            var firstError: String?

            mutating func fail(_ count: Int, _ error: any Error) {
                failed += count
                if firstError == nil { firstError = "\(error)" }
            }

            mutating func add(_ result: DetectionResult) {
                ok += 1
                largestBatch = max(largestBatch, result.batchSize)
                for (stage, ms) in result.timingsMs { stageSums[stage, default: 0] += ms }
            }

            mutating func merge(_ other: Tally) {
                latencies += other.latencies
                ok += other.ok
                failed += other.failed
                largestBatch = max(largestBatch, other.largestBatch)
                stageSums.merge(other.stageSums, uniquingKeysWith: +)
                firstError = firstError ?? other.firstError
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: duration)
        let counter = LockedBox(0)
        let perRequest = max(imagesPerRequest, 1)
        let total = await withTaskGroup(of: Tally.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var mine = Tally()
                    while clock.now < deadline {
                        let first = counter.withLock { value -> Int in
                            defer { value += perRequest }
                            return value
                        }
                        let sent = clock.now
                        do {
                            if perRequest == 1 {
                                mine.add(try await client.detect(images[first % images.count]))
                            } else {
                                let batch = (first..<first + perRequest).map { images[$0 % images.count] }
                                for result in try await client.detect(batch: batch) {
                                    switch result {
                                    case .success(let value): mine.add(value)
                                    case .failure(let error): mine.fail(1, error)
                                    }
                                }
                            }
                        } catch {
                            mine.fail(perRequest, error)
                        }
                        mine.latencies.append(sent.duration(to: clock.now).seconds * 1000)
                    }
                    return mine
                }
            }
            var all = Tally()
            for await part in group { all.merge(part) }
            return all
        }
        let seconds = start.duration(to: clock.now).seconds
        if total.ok == 0, let error = total.firstError {
            throw ServeError(
                .rejected, "Every request failed at \(concurrency) in flight: \(error)",
                remedy: "See 'raylan serve status' and the replica's log; 'raylan detect' on one image shows the same error.")
        }
        let latencies = total.latencies.sorted()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        let level = BenchmarkReport.Level(
            concurrency: concurrency, imagesPerRequest: perRequest, images: total.ok, failures: total.failed,
            imagesPerSecond: Double(total.ok) / seconds, latencyP50Ms: percentile(0.5), latencyP95Ms: percentile(0.95),
            latencyP99Ms: percentile(0.99), largestBatch: total.largestBatch)
        // Transport is judged per image: a request's latency is shared by its images.
        let meanLatency = latencies.isEmpty ? 0 : latencies.reduce(0, +) / Double(latencies.count)
        return Measured(level: level, stageSums: total.stageSums, meanLatency: meanLatency)
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
