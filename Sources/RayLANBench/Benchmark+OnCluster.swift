import Foundation
import RayLAN

extension Benchmark {
    /// Where and how many images the on-cluster figure uses (``Configuration/onCluster``).
    public struct OnClusterSetting: Sendable, Hashable {
        /// A folder that this machine and every cluster node see at the same path (the embedded cluster's
        /// machine, or an NFS/SMB share mounted alike everywhere). The bench writes its copies of the images
        /// into a new sub-folder and removes it afterwards.
        public var folder: URL
        /// Images in the run: the bench's images repeated up to this many. Default 240.
        public var images: Int

        public init(folder: URL, images: Int = 240) {
            self.folder = folder
            self.images = images
        }
    }

    /// The same images once through ``ClusterDatasetRun`` (read and detected on the cluster with Ray Data) and
    /// once streamed from here through the service (``DetectionRun``), each timed from its start to its last
    /// result (the Ray Data actors' start-up and model load included). A failure of the on-cluster run (no free
    /// GPU beside the service, say) is reported as the figure's `skipped` reason, not thrown.
    func measureOnCluster(
        _ setting: OnClusterSetting, images: [Data], progress: @Sendable (String) -> Void
    ) async throws -> BenchmarkReport.OnCluster {
        let fileManager = FileManager.default
        let folder = setting.folder.appendingPathComponent("raylan-bench-\(UUID().uuidString.prefix(8))")
        try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(at: folder) }
        let count = max(setting.images, 1)
        for index in 0..<count {
            let source = configuration.images[index % configuration.images.count]
            let name = String(format: "%05d-", index) + source.lastPathComponent
            try images[index % images.count].write(to: folder.appendingPathComponent(name))
        }
        let clock = ContinuousClock()
        progress("(6) \(count) images streamed through the service…")
        let streamedOut = folder.appendingPathComponent("streamed-out")
        let start = clock.now
        let streamed = try await DetectionRun(
            inputs: [folder.appendingPathComponent("*.*").path], output: streamedOut,
            service: .running(configuration.deployment.name), maxSide: configuration.maxSide
        ).run(on: cluster)
        let streamedSeconds = (clock.now - start).seconds
        var figure = BenchmarkReport.OnCluster(
            images: count, streamedSeconds: streamedSeconds,
            streamedImagesPerSecond: streamedSeconds > 0 ? Double(streamed.succeeded) / streamedSeconds : 0)
        progress("(6) the same \(count) images read and detected on the cluster (Ray Data)…")
        var run = ClusterDatasetRun(
            paths: [folder.path], deployment: configuration.deployment,
            clusterOutput: folder.appendingPathComponent("on-cluster-out").path)
        run.settings.gpusPerActor = configuration.deployment.gpusPerReplica
        run.httpPort = servePort
        let onClusterStart = clock.now
        do {
            let summary = try await run.run(on: cluster)
            let seconds = (clock.now - onClusterStart).seconds
            figure.onClusterSeconds = seconds
            figure.onClusterImagesPerSecond = seconds > 0 ? Double(summary.succeeded) / seconds : 0
            figure.onClusterStartupSeconds = summary.startupSeconds
            figure.nodes = summary.nodes
            if streamed.succeeded != count || summary.succeeded != count {
                figure.skipped =
                    "not every image succeeded (streamed \(streamed.succeeded), on the cluster \(summary.succeeded) of "
                    + "\(count))"
            }
        } catch let error where !(error is CancellationError) {
            figure.skipped = "\(error)"
        }
        return figure
    }
}

extension BenchmarkReport {
    /// `raylan bench --on-cluster-dir`: the same images detected on the cluster (Ray Data) and streamed from this
    /// machine through the service, in one run.
    public struct OnCluster: Sendable, Codable {
        public var images: Int
        public var streamedSeconds: Double
        public var streamedImagesPerSecond: Double
        public var onClusterSeconds: Double?
        public var onClusterImagesPerSecond: Double?
        /// Of ``onClusterSeconds``, those before the first answers: the actors' start and model load.
        public var onClusterStartupSeconds: Double?
        /// Images each node's Ray Data actors detected.
        public var nodes: [String: Int]?
        /// Why the on-cluster figure is missing or not comparable.
        public var skipped: String?

        /// On-cluster over streamed images/s.
        public var ratio: Double? {
            guard let onClusterImagesPerSecond, streamedImagesPerSecond > 0, skipped == nil else { return nil }
            return onClusterImagesPerSecond / streamedImagesPerSecond
        }
    }
}
