import Foundation

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
    /// Images/s that the wire allows at this image size.
    public var lanBoundImagesPerSecond: [String: Double]
    public var clientRSSStartMiB: Double
    public var clientRSSEndMiB: Double
}
