import Foundation
import RayLAN

/// What `raylan bench` measured, with every figure's ratio to RayLAN's end-to-end rate.
public struct BenchmarkReport: Sendable, Codable {
    /// One concurrency level of a Serve measurement.
    public struct Level: Sendable, Hashable, Codable {
        /// Requests in flight.
        public var concurrency: Int
        /// Images per request (1: `/detect`; more: `/detect/batch`).
        public var imagesPerRequest: Int
        /// Images answered.
        public var images: Int
        /// Images whose request failed.
        public var failures: Int
        /// Wall-clock seconds the level ran: the configured duration, plus the requests in flight at its end.
        public var seconds: Double
        /// `images / seconds`.
        public var imagesPerSecond: Double
        public var latencyP50Ms: Double
        public var latencyP95Ms: Double
        public var latencyP99Ms: Double
        public var largestBatch: Int
    }

    /// A reference figure measured on the cluster by a Ray job (`raylan_bench.run`).
    public struct Reference: Sendable, Codable {
        public var imagesPerSecond: Double
        /// Ratio to RayLAN's best end-to-end rate.
        public var ratioToRayLAN: Double?
        public var details: JSONValue
    }

    /// (1)'s best level measured again with one thing changed, in the same run.
    public struct Variant: Sendable, Codable {
        /// What changed, e.g. `ultralytics backend`, `original files (no client shrink)`.
        public var what: String
        public var level: Level
        /// Ratio to RayLAN's best end-to-end rate.
        public var ratioToRayLAN: Double?

        /// `level`, measured with `what` changed, and its ratio to `best`.
        init(what: String, level: Level, best: Level) {
            self.what = what
            self.level = level
            ratioToRayLAN = best.imagesPerSecond > 0 ? level.imagesPerSecond / best.imagesPerSecond : nil
        }
    }

    /// What the client's shrink (`--max-side`) does to the bytes sent and to the answers.
    public struct Shrink: Sendable, Codable {
        /// The longer side JPEGs were shrunk to.
        public var maxSide: Int
        public var originalBytesPerImage: Double
        public var sentBytesPerImage: Double
        /// The shrunk images' boxes (mapped back to original pixels) against the originals' (same class, IoU ≥ 0.9).
        public var agreement: DetectionAgreement

        /// How many times fewer bytes are sent.
        public var byteRatio: Double { sentBytesPerImage > 0 ? originalBytesPerImage / sentBytesPerImage : 0 }
    }

    public var date: String
    public var model: String
    public var imageSize: Int?
    public var images: Int
    public var bytesPerImage: Double
    public var clusterDevice: String?
    public var rayVersion: String
    public var pythonVersion: String?
    public var clientCPUs: Int
    public var knobs: [String: String]
    public var endToEnd: [Level]
    public var bestEndToEnd: Level?
    public var modelOnly: Reference?
    public var ultralyticsLoop: Reference?
    public var seedPattern: Reference?
    public var naiveServe: Level?
    public var naiveServeRatio: Double?
    /// Mean milliseconds per image on the replica, by stage, at the best level; `transport` is the
    /// client's latency minus the replica's total.
    public var stageSplitMs: [String: Double]
    /// Images/s that the wire allows at the bytes sent per image (after the client's shrink).
    public var lanBoundImagesPerSecond: [String: Double]
    public var clientRSSStartMiB: Double
    public var clientRSSEndMiB: Double
    /// What ran the model (`tensor`, `ultralytics`) and why, as the service's `/models` says.
    public var backend: String?
    public var backendReason: String?
    /// The client's shrink; nil when it sent the files as they are.
    public var shrink: Shrink?
    public var variants: [Variant]?
    /// The fastest replicas × batch setting among the service's own and those swept (`raylan bench
    /// --sweep-replicas/--sweep-max-batch`), with its rate; nil without a sweep.
    public var bestSetting: String?
    /// The same images detected on the cluster (Ray Data) and streamed through the service; nil unless asked for.
    public var onCluster: OnCluster? = nil

    /// (1) at `raylan detect`'s own setting (``DetectionRun/defaultConcurrency`` requests in flight of
    /// ``DetectionRun/defaultImagesPerRequest`` images), when it was one of the levels measured.
    public var detectDefaults: Level? {
        endToEnd.first {
            $0.concurrency == DetectionRun.defaultConcurrency
                && $0.imagesPerRequest == DetectionRun.defaultImagesPerRequest
        }
    }

    /// ``detectDefaults``' rate over Ultralytics' own predict loop's (3), when both were measured.
    public var detectDefaultsVsUltralytics: Double? {
        guard let level = detectDefaults, let loop = ultralyticsLoop?.imagesPerSecond, loop > 0 else { return nil }
        return level.imagesPerSecond / loop
    }
}
