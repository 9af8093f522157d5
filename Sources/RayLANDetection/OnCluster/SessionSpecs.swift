import Foundation
import RayLANCore
import RayLANGateway

/// What a session is created with: its class's keyword arguments, one Swift type per class, each with a golden
/// example in `contracts/`.
protocol SessionSpec: Codable, Hashable {}

extension SessionSpec {
    /// The members as keyword arguments, through ``RemoteArgument/init(_:)``'s encoding; a nil member is left
    /// out (encoded if present only: the session's default).
    func keywords() throws -> [String: RemoteArgument] {
        guard case .json(.object(let members)) = try RemoteArgument(self) else {
            preconditionFailure("a session spec encodes as a JSON object")
        }
        return members.mapValues { .json($0) }
    }
}

/// The keywords a video session is created with (`raylan_detect.video:VideoSession`). Golden example:
/// `contracts/video_session.json`, which `cluster/tests/test_contract.py` checks against the session's
/// parameters and validation.
struct VideoSessionSpec: SessionSpec {
    /// The Serve application whose replicas detect the frames.
    struct Detector: Codable, Hashable {
        var app: String
    }

    /// A path on the cluster, a stream's URL, or the uploaded file's original name.
    var source: String
    var detector: Detector
    var stride: Int
    var annotate: Bool
    var report: Bool
    var conf: Double
    var iou: Double
    var classes: [Int]?
    var track: String?
    var batch: Int
    var buffer: Int
    var reconnectAttempts: Int
    var reconnectDelay: Double
    var leaseS: Double
    /// The folder on the cluster the outputs go to; nil: the session's own.
    var outDir: String?
    /// A live stream (frames dropped when detection falls behind).
    var live: Bool?
    /// An uploaded file: its pieces (object refs, in their wire form), SHA-256 and the name it is written as.
    var chunks: [JSONValue]?
    var sha256: String?
    var name: String?
    /// Previews a second for a person watching (``VideoPreview``); nil or 0: none.
    var previewFPS: Double?
    /// A preview's longer side, in pixels; nil: the session's default (640).
    var previewSide: Int?

    enum CodingKeys: String, CodingKey {
        case source, detector, stride, annotate, report, conf, iou, classes, track, batch, buffer, live, chunks,
            sha256, name
        case previewFPS = "preview_fps"
        case previewSide = "preview_side"
        case reconnectAttempts = "reconnect_attempts"
        case reconnectDelay = "reconnect_delay"
        case leaseS = "lease_s"
        case outDir = "out_dir"
    }
}

/// The keywords a dataset session is created with (`raylan_detect.dataset:DatasetSession`). Golden example:
/// `contracts/dataset_session.json`.
struct DatasetSessionSpec: SessionSpec {
    var paths: [String]
    /// The model's path in the session's working directory, or on the cluster.
    var model: String
    var outDir: String
    var backend: String
    var imgsz: Int?
    var conf: Double
    var iou: Double
    var classes: [Int]?
    var annotate: Bool
    var resume: Bool
    var batchSize: Int
    var actors: Int?
    var gpusPerActor: Double?
    /// nil: sized on the cluster to what is free (`dataset.plan_nodes`).
    var cpusPerActor: Double?
    var leaseS: Double

    enum CodingKeys: String, CodingKey {
        case paths, model, backend, imgsz, conf, iou, classes, annotate, resume, actors
        case outDir = "out_dir"
        case batchSize = "batch_size"
        case gpusPerActor = "gpus_per_actor"
        case cpusPerActor = "cpus_per_actor"
        case leaseS = "lease_s"
    }
}
