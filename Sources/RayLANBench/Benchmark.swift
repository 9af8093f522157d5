#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLAN

/// `raylan bench`: RayLAN's end-to-end detection rate next to the model's own limit, Ultralytics' predict
/// loop, the seed's task-per-image pattern and naive Ray Serve — same cluster, model and images, one run.
public struct Benchmark: Sendable {
    /// Default: the knobs of ``DetectionDeployment``, 10 s per level, levels 1, 4, 8 (`raylan detect`'s), 16, 64.
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
        /// How the client shrinks each JPEG before sending it in (1), as `raylan detect --max-side` does.
        /// Default ``MaxSide/auto``: the served model's input size.
        public var maxSide: MaxSide = .auto
        /// Whether (1)'s best level is measured again with one thing changed: the other backend, and (when
        /// the client shrinks) the original files. Default true.
        public var measuresVariants = true
        /// Settings of replicas × largest batch under which (1)'s best level is measured again (the service
        /// redeployed with each, then with its own again), for the report's best setting. Default: none.
        public var sweep: [Setting] = []
        /// Also measure the images read and detected on the cluster (``ClusterDatasetRun``) against streamed
        /// through the service, in one run. Default nil: not measured.
        public var onCluster: OnClusterSetting?
        /// With the variants: (1)'s best level again while this many anonymous requests per second (no key)
        /// hit the service, to show that they take nothing from keyed clients (Serve's proxy guard or the
        /// application refuses them before any work). Default 200; 0 leaves it out.
        public var anonymousRequestsPerSecond = 200

        public init(
            deployment: DetectionDeployment, images: [URL], duration: Duration = .seconds(10),
            concurrencyLevels: [Int] = [1, 4, 8, 16, 64], seedImages: Int = 8, imagesPerRequest: [Int] = [1, 8]
        ) {
            self.imagesPerRequest = imagesPerRequest
            self.deployment = deployment
            self.images = images
            self.duration = duration
            self.concurrencyLevels = concurrencyLevels
            self.seedImages = seedImages
        }
    }

    /// Replicas × largest batch, a point of ``Configuration/sweep``.
    public struct Setting: Sendable, Hashable, CustomStringConvertible {
        public var replicas: Int
        public var maxBatch: Int

        public init(replicas: Int, maxBatch: Int) {
            self.replicas = replicas
            self.maxBatch = maxBatch
        }

        /// E.g. `2 replicas × batch 16`.
        public var description: String { "\(replicas) replica\(replicas == 1 ? "" : "s") × batch \(maxBatch)" }
    }

    public let cluster: RayCluster
    public let configuration: Configuration
    public let servePort: Int

    public init(cluster: RayCluster, configuration: Configuration, servePort: Int = 8000) {
        self.cluster = cluster
        self.configuration = configuration
        self.servePort = servePort
    }

    /// Runs every measurement: the references as Ray jobs, RayLAN end to end at every level, its best level
    /// again with the other backend and without the client's shrink, then naive Ray Serve. The detection
    /// service stays deployed afterwards unless it holds more than half a GPU (an extra application would not
    /// fit beside it on a one-GPU host, so it is removed first); the extra applications are removed.
    ///
    /// - Parameters:
    ///   - code: RayLAN's cluster code. Default nil: ``ClusterCode/locate()``.
    ///   - progress: Gets one line per step.
    /// - Returns: Every figure with its ratio to RayLAN's best end-to-end rate.
    /// - Throws: ``BenchError`` when there are no images or every request at a level failed; ``ClusterError``,
    ///   ``ServeError`` or ``JobError`` as the cluster, a deploy or a reference job fails.
    public func run(
        code: ClusterCode? = nil, progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> BenchmarkReport {
        let rssStart = Self.residentMiB()
        let code = try code ?? ClusterCode.locate()
        let info = try await cluster.serverInfo()
        let images = try loadImages()
        // The references first, as Ray jobs, before the services hold the GPU.
        let references = try await measureReferences(code: code, progress: progress)
        var endToEnd = try await measureEndToEnd(images, code: code, progress: progress)
        if configuration.measuresVariants {
            endToEnd.variants = try await measureVariants(images, endToEnd, code: code, progress: progress)
        }
        endToEnd.variants += try await measureSweep(images, endToEnd, code: code, progress: progress)
        var onCluster: BenchmarkReport.OnCluster?
        if let setting = configuration.onCluster {
            onCluster = try await measureOnCluster(setting, images: images, progress: progress)
        }
        let naive = try await measureNaiveServe(images, inFlight: endToEnd.best, code: code, progress: progress)
        var report = makeReport(
            info: info, images: images, references: references, endToEnd: endToEnd, naive: naive, rssStart: rssStart)
        report.onCluster = onCluster
        return report
    }

    /// The configuration's images, read.
    func loadImages() throws -> [Data] {
        let images = try configuration.images.map { try Data(contentsOf: $0) }
        guard !images.isEmpty else { throw BenchError.noImages() }
        return images
    }

    /// What the `raylan_bench.run` jobs printed: (2) the model alone, (3) Ultralytics' loop, (4) the seed's
    /// pattern.
    struct References {
        var modelOnly: JSONValue
        var ultralytics: JSONValue
        var seed: JSONValue
    }

    /// Stages the cluster code with the model and images, and runs the three reference jobs.
    func measureReferences(code: ClusterCode, progress: @Sendable (String) -> Void) async throws -> References {
        let deployment = configuration.deployment
        let extra = configuration.images.enumerated().map {
            ($0.element, "bench_images/\(String(format: "%05d", $0.offset)).\($0.element.pathExtension)")
        }
        let staged = try code.stage(model: deployment.isLocalFile ? deployment.model : nil, extra: extra)
        defer { try? FileManager.default.removeItem(at: staged.folder) }
        let model = staged.modelArgument ?? deployment.model
        let run = "python -m raylan_bench.run --model \(model)" + (deployment.imageSize.map { " --imgsz \($0)" } ?? "")
        let seconds = configuration.duration.seconds
        let gpus: Double = deployment.gpusPerReplica > 0 ? 1 : 0
        let batches = Set([1, deployment.maxBatch, 32, 128]).sorted().map(String.init).joined(separator: ",")
        progress("Model-only limit (forward pass alone)…")
        let modelOnly = try await reference(
            "\(run) --mode model_only --batches \(batches) --seconds \(max(seconds / 4, 2))", folder: staged.folder,
            gpus: gpus)
        progress("Ultralytics' own predict loop…")
        let ultralytics = try await reference(
            "\(run) --mode ultralytics --batch \(deployment.maxBatch) --seconds \(seconds)", folder: staged.folder,
            gpus: gpus)
        progress("The seed's pattern (a Ray task per image, loading the model each time)…")
        let seed = try await reference(
            "\(run) --mode seed --limit \(configuration.seedImages) --gpus \(Int(gpus))", folder: staged.folder,
            gpus: 0)
        return References(modelOnly: modelOnly, ultralytics: ultralytics, seed: seed)
    }

    /// RayLAN end to end: every level, the best of them, and the stage split measured at the best.
    struct EndToEnd {
        var levels: [BenchmarkReport.Level]
        var best: BenchmarkReport.Level?
        /// Mean milliseconds per image by stage at the best level, with `transport`.
        var stageSplitMs: [String: Double]
        /// The service's backend and why it runs (`/models`).
        var backend: (kind: String, reason: String)?
        /// The longer side the client shrank JPEGs to; nil: sent as they are.
        var maxSide: Int?
        var shrink: BenchmarkReport.Shrink?
        var variants: [BenchmarkReport.Variant] = []
    }

    /// Deploys the detection service and drives it at every concurrency level and request size.
    func measureEndToEnd(
        _ images: [Data], code: ClusterCode, progress: @Sendable (String) -> Void
    ) async throws -> EndToEnd {
        progress("Deploying the detection service…")
        try await cluster.deploy(configuration.deployment, code: code, httpPort: servePort)
        let client = try await DetectionClient(cluster: cluster, application: configuration.deployment.name)
        // As `raylan detect`: a service that names no input size gets the files as they are.
        let maxSide: Int?
        do {
            maxSide = try await client.pixels(for: configuration.maxSide)
        } catch {
            progress("The files are sent as they are: \(error)")
            maxSide = nil
        }
        var served: JSONValue?
        if case .array(let models)? = try await client.models()["models"] { served = models.first }
        let backend = served?["backend"]?.stringValue.map { ($0, served?["backend_reason"]?.stringValue ?? "") }
        var levels: [BenchmarkReport.Level] = []
        var atBest: Measured?
        for perRequest in configuration.imagesPerRequest {
            for concurrency in configuration.concurrencyLevels {
                let per = perRequest > 1 ? " × \(perRequest) images per request" : ""
                progress("RayLAN end to end, \(concurrency) in flight\(per)…")
                let measured = try await Self.drive(
                    client, images: images, concurrency: concurrency, imagesPerRequest: perRequest,
                    duration: configuration.duration, maxSide: maxSide)
                levels.append(measured.level)
                if measured.level.imagesPerSecond >= (levels.map(\.imagesPerSecond).max() ?? 0) { atBest = measured }
            }
        }
        let best = levels.max { $0.imagesPerSecond < $1.imagesPerSecond }
        var endToEnd = EndToEnd(
            levels: levels, best: best, stageSplitMs: atBest.map(Self.stageSplit) ?? [:], backend: backend,
            maxSide: maxSide)
        if let maxSide, images.contains(where: DownscaledImage.isJPEG) {
            progress("The client's shrink to \(maxSide) px: bytes and agreement with the original files…")
            endToEnd.shrink = try await Self.measureShrink(client, images: images, maxSide: maxSide)
        }
        return endToEnd
    }

    /// Each image detected once as it is and once shrunk to `maxSide` (boxes mapped back): the bytes sent and
    /// the share of the original's boxes found again (same class, IoU ≥ 0.9).
    static func measureShrink(_ client: DetectionClient, images: [Data], maxSide: Int) async throws
        -> BenchmarkReport.Shrink
    {
        var agreement = DetectionAgreement()
        var sentBytes = 0
        // JPEGs only (nothing else is shrunk), at most 64: two requests each, one after the other.
        let sample = images.filter(DownscaledImage.isJPEG).prefix(64)
        for image in sample {
            let shrunk = DownscaledImage.make(image, maxSide: maxSide)
            sentBytes += shrunk.data.count
            let original = try await client.detect(image)
            let mapped = try await client.detect(shrunk.data).mapped(toOriginalOf: shrunk)
            agreement += DetectionAgreement(reference: original.detections, candidate: mapped.detections)
        }
        let count = Double(max(sample.count, 1))
        return BenchmarkReport.Shrink(
            maxSide: maxSide, originalBytesPerImage: Double(sample.reduce(0) { $0 + $1.count }) / count,
            sentBytesPerImage: Double(sentBytes) / count, agreement: agreement)
    }

    /// (1)'s best level again with one thing changed: the original files (when the client shrank them), then
    /// the other backend (an application of its own, removed afterwards). A variant that cannot run is a note,
    /// not a failed benchmark.
    func measureVariants(
        _ images: [Data], _ endToEnd: EndToEnd, code: ClusterCode, progress: @Sendable (String) -> Void
    ) async throws -> [BenchmarkReport.Variant] {
        guard let best = endToEnd.best else { return [] }
        let deployment = configuration.deployment
        var variants: [BenchmarkReport.Variant] = []
        func variant(_ what: String, _ level: BenchmarkReport.Level) -> BenchmarkReport.Variant {
            .init(what: what, level: level, best: best)
        }
        if endToEnd.maxSide != nil {
            progress("The best level again, sending the original files…")
            let client = try await DetectionClient(cluster: cluster, application: deployment.name)
            let level = try await Self.drive(
                client, images: images, concurrency: best.concurrency, imagesPerRequest: best.imagesPerRequest,
                duration: configuration.duration
            ).level
            variants.append(variant("original files (no client shrink)", level))
        }
        let other: DetectionDeployment.Backend = endToEnd.backend?.kind == "tensor" ? .ultralytics : .tensor
        var extra = deployment
        extra.name = deployment.name + "-" + other.rawValue
        extra.backend = other
        progress("The best level again on the \(other.rawValue) backend…")
        do {
            let client = try await deployExtra(extra, code: code)
            let level = try await Self.drive(
                client, images: images, concurrency: best.concurrency, imagesPerRequest: best.imagesPerRequest,
                duration: configuration.duration, maxSide: endToEnd.maxSide
            ).level
            try await cluster.deleteServeApplication(extra.name)
            variants.append(variant("\(other.rawValue) backend", level))
        } catch {
            _ = try? await cluster.deleteServeApplication(extra.name)
            progress("The \(other.rawValue) backend was not measured: \(error)")
        }
        // Over plain HTTP and over TLS in one run: through a TLS front in this process, in front of the same
        // proxy. A cluster reached over TLS (a head's front) serves plain HTTP on its loopback only: run the
        // benchmark on the head with --address 127.0.0.1 to measure both there.
        if cluster.address.scheme == "http" {
            progress("The best level again over TLS (a TLS front in this process)…")
            do {
                let endpoint = try await DetectionClient(cluster: cluster, application: deployment.name).endpoint
                let level = try await Self.throughTLSFront(to: endpoint) { sealed in
                    try await Self.drive(
                        DetectionClient(cluster: cluster, endpoint: sealed), images: images,
                        concurrency: best.concurrency, imagesPerRequest: best.imagesPerRequest,
                        duration: configuration.duration, maxSide: endToEnd.maxSide
                    ).level
                }
                variants.append(variant(Self.overTLS, level))
            } catch {
                progress("TLS was not measured: \(error)")
            }
        } else {
            progress(
                "Plain HTTP was not measured: this head serves it on its loopback only (run 'raylan bench' there with "
                    + "--address 127.0.0.1 to measure both).")
        }
        let rate = configuration.anonymousRequestsPerSecond
        if rate > 0, let image = images.first {
            progress("The best level again while \(rate) anonymous requests/s hit the service…")
            let client = try await DetectionClient(cluster: cluster, application: deployment.name)
            async let flood = Self.flood(
                cluster, endpoint: client.endpoint.anonymous, image: image, rate: rate, duration: configuration.duration
            )
            let level = try await Self.drive(
                client, images: images, concurrency: best.concurrency, imagesPerRequest: best.imagesPerRequest,
                duration: configuration.duration, maxSide: endToEnd.maxSide
            ).level
            let (sent, refused, served) = await flood
            variants.append(
                variant(
                    "alongside \(sent) anonymous requests at \(rate)/s (\(refused) refused 401, \(served) served)",
                    level))
        }
        return variants
    }

    /// (1)'s best level under each setting of ``Configuration/sweep`` but the service's own: the service is
    /// redeployed with it (requests in flight scaled by its replicas over the service's own), and with its own
    /// setting at the end, also after a failure. A setting that cannot be deployed within 5 minutes (no room
    /// for its replicas) is skipped with a progress line; the figures measured so far are kept.
    func measureSweep(
        _ images: [Data], _ endToEnd: EndToEnd, code: ClusterCode, progress: @Sendable (String) -> Void
    ) async throws -> [BenchmarkReport.Variant] {
        let deployment = configuration.deployment
        let own = Self.setting(of: deployment)
        guard let best = endToEnd.best, !configuration.sweep.isEmpty else { return [] }
        var variants: [BenchmarkReport.Variant] = []
        for setting in configuration.sweep where setting != own {
            var swept = deployment
            swept.replicas = .fixed(setting.replicas)
            swept.maxBatch = setting.maxBatch
            progress("The best level again with \(setting)…")
            do {
                try await cluster.deploy(swept, code: code, httpPort: servePort, timeout: .seconds(300))
                let client = try await DetectionClient(cluster: cluster, application: swept.name)
                let inFlight = max(1, best.concurrency * setting.replicas / max(own.replicas, 1))
                let level = try await Self.drive(
                    client, images: images, concurrency: inFlight, imagesPerRequest: best.imagesPerRequest,
                    duration: configuration.duration, maxSide: endToEnd.maxSide
                ).level
                variants.append(.init(what: setting.description, level: level, best: best))
            } catch {
                progress("\(setting) was not measured: \(error)")
            }
        }
        progress("Deploying the detection service with its own setting again…")
        try await cluster.deploy(deployment, code: code, httpPort: servePort)
        return variants
    }

    /// A deployment's replicas × largest batch (autoscaling counts as its most replicas).
    public static func setting(of deployment: DetectionDeployment) -> Setting {
        switch deployment.replicas {
        case .fixed(let count): Setting(replicas: count, maxBatch: deployment.maxBatch)
        case .auto(_, let high): Setting(replicas: high, maxBatch: deployment.maxBatch)
        }
    }

    /// Deploys an application beside the detection service and returns its client. Where the service holds
    /// more than half a GPU in all, both would not fit on a one-GPU host: the service is removed first.
    func deployExtra(_ extra: DetectionDeployment, code: ClusterCode) async throws -> DetectionClient {
        let service = configuration.deployment
        if service.gpusPerReplica * Double(Self.setting(of: service).replicas) > 0.5,
            try await cluster.serveStatus().applications[configuration.deployment.name] != nil
        {
            try await cluster.deleteServeApplication(configuration.deployment.name)
        }
        try await cluster.deploy(extra, code: code, httpPort: servePort)
        return try await DetectionClient(cluster: cluster, application: extra.name)
    }

    /// Mean milliseconds per image by stage; `transport` is the client's mean latency minus the replica's total.
    static func stageSplit(_ measured: Measured) -> [String: Double] {
        let count = measured.level.images
        guard count > 0 else { return [:] }
        var split = measured.stageSums.mapValues { $0 / Double(count) }
        if let total = split["total"] { split["transport"] = max(measured.meanLatency - total, 0) }
        return split
    }

    /// Naive Ray Serve (one image per request, no batching) with as many images in flight as `best` had;
    /// the naive application is removed afterwards.
    func measureNaiveServe(
        _ images: [Data], inFlight best: BenchmarkReport.Level?, code: ClusterCode,
        progress: @Sendable (String) -> Void
    ) async throws -> BenchmarkReport.Level {
        progress("Naive Ray Serve (one image per request, no batching)…")
        var naive = configuration.deployment
        naive.name = configuration.deployment.name + "-naive"
        naive.isNaive = true
        let client = try await deployExtra(naive, code: code)
        let level = try await Self.drive(
            client, images: images, concurrency: (best?.concurrency ?? 1) * (best?.imagesPerRequest ?? 1),
            duration: configuration.duration
        ).level
        try await cluster.deleteServeApplication(naive.name)
        return level
    }

    /// The report: every figure, each reference's ratio to the best end-to-end rate, and the setting.
    func makeReport(
        info: ServerInfo, images: [Data], references: References, endToEnd: EndToEnd, naive: BenchmarkReport.Level,
        rssStart: Double
    ) -> BenchmarkReport {
        let deployment = configuration.deployment
        let bytesPerImage = Double(images.reduce(0) { $0 + $1.count }) / Double(images.count)
        let bytesOnTheWire = endToEnd.shrink?.sentBytesPerImage ?? bytesPerImage
        var bestSetting: String?
        if !configuration.sweep.isEmpty {
            let swept = Set(configuration.sweep.map(\.description))
            let candidates =
                [(Self.setting(of: deployment).description, endToEnd.best?.imagesPerSecond ?? 0)]
                + endToEnd.variants.filter { swept.contains($0.what) }.map { ($0.what, $0.level.imagesPerSecond) }
            bestSetting = candidates.max { $0.1 < $1.1 }.map { "\($0.0) (\(String(format: "%.1f", $0.1)) images/s)" }
        }
        let rate = endToEnd.best?.imagesPerSecond ?? 0
        func ratio(_ value: Double) -> Double? { rate > 0 ? value / rate : nil }
        func make(_ answer: JSONValue, _ key: String) -> BenchmarkReport.Reference {
            let value = answer[key]?.doubleValue ?? 0
            return .init(imagesPerSecond: value, ratioToRayLAN: ratio(value), details: answer)
        }
        return BenchmarkReport(
            date: ISO8601DateFormatter().string(from: Date()), model: deployment.model,
            imageSize: deployment.imageSize ?? references.modelOnly["imgsz"]?.doubleValue.map { Int($0) },
            images: images.count, bytesPerImage: bytesPerImage,
            clusterDevice: references.modelOnly["device"]?.stringValue, rayVersion: info.rayVersion.description,
            pythonVersion: info.pythonVersion, clientCPUs: ProcessInfo.processInfo.activeProcessorCount,
            knobs: Self.knobs(deployment), endToEnd: endToEnd.levels, bestEndToEnd: endToEnd.best,
            modelOnly: make(references.modelOnly, "best_images_per_second"),
            ultralyticsLoop: make(references.ultralytics, "images_per_second"),
            seedPattern: make(references.seed, "images_per_second"), naiveServe: naive,
            naiveServeRatio: ratio(naive.imagesPerSecond), stageSplitMs: endToEnd.stageSplitMs,
            lanBoundImagesPerSecond: ["1GbE": 125_000_000 / bytesOnTheWire, "10GbE": 1_250_000_000 / bytesOnTheWire],
            clientRSSStartMiB: rssStart, clientRSSEndMiB: Self.residentMiB(), backend: endToEnd.backend?.kind,
            backendReason: endToEnd.backend?.reason, shrink: endToEnd.shrink, variants: endToEnd.variants,
            bestSetting: bestSetting)
    }

    /// The deployment's settings as the report shows them.
    static func knobs(_ deployment: DetectionDeployment) -> [String: String] {
        var knobs = [
            "max_batch": String(deployment.maxBatch), "batch_wait_ms": String(deployment.batchWaitMilliseconds),
            "gpus_per_replica": String(deployment.gpusPerReplica),
            "cpus_per_replica": String(deployment.cpusPerReplica),
        ]
        switch deployment.replicas {
        case .fixed(let count): knobs["replicas"] = String(count)
        case .auto(let low, let high): knobs["replicas"] = "auto \(low)-\(high)"
        }
        return knobs
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
    /// With `maxSide`, each JPEG is shrunk as it is sent (``DownscaledImage``), on the client's own CPU, as
    /// `raylan detect` does.
    static func drive(
        _ client: DetectionClient, images: [Data], concurrency: Int, imagesPerRequest: Int = 1, duration: Duration,
        maxSide: Int? = nil
    ) async throws -> Measured {
        struct Tally: Sendable {
            var latencies: [Double] = []
            var ok = 0
            var failed = 0
            var largestBatch = 0
            var stageSums: [String: Double] = [:]
            var firstError: (any Error)?

            mutating func fail(_ count: Int, _ error: any Error) {
                failed += count
                if firstError == nil { firstError = error }
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
                        func image(_ index: Int) -> Data {
                            maxSide.map { DownscaledImage.make(images[index % images.count], maxSide: $0).data }
                                ?? images[index % images.count]
                        }
                        do {
                            if perRequest == 1 {
                                mine.add(try await client.detect(image(first)))
                            } else {
                                let batch = (first..<first + perRequest).map(image)
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
            throw BenchError.everyRequestFailed(concurrency: concurrency, imagesPerRequest: perRequest, first: error)
        }
        let latencies = total.latencies.sorted()
        func percentile(_ p: Double) -> Double { latencies.percentile(p) }
        let level = BenchmarkReport.Level(
            concurrency: concurrency, imagesPerRequest: perRequest, images: total.ok, failures: total.failed,
            seconds: seconds, imagesPerSecond: Double(total.ok) / seconds, latencyP50Ms: percentile(0.5),
            latencyP95Ms: percentile(0.95), latencyP99Ms: percentile(0.99), largestBatch: total.largestBatch)
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

extension [Double] {
    /// The value at fraction `p` (0…1) of this sorted array; 0 when it is empty.
    func percentile(_ p: Double) -> Double {
        isEmpty ? 0 : self[Swift.min(count - 1, Int(Double(count) * p))]
    }
}
