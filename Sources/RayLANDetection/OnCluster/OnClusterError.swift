import Foundation
import RayLANCore
import RayLANGateway

/// Work that RayLAN runs on the cluster itself (a video or stream, a dataset on the cluster's disks) ended
/// without its results: the cluster side named why.
///
/// Match on ``code`` (`error.code == .streamLost`).
public struct OnClusterError: RayLANError, Sendable, Hashable, Codable {
    /// What kind of failure this is; open, so that a code a newer cluster side sends still decodes. Encodes as its
    /// string (`stream_lost`).
    public struct Code: StringValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A live stream could not be read again after every reconnection attempt.
        public static let streamLost = Code(rawValue: "stream_lost")
        /// The video file is not where the cluster looked (a usage error).
        public static let sourceNotFound = Code(rawValue: "source_not_found")
        /// The video or stream could not be opened or decoded.
        public static let sourceUnreadable = Code(rawValue: "source_unreadable")
        /// The uploaded video's bytes on the cluster do not match the local file's SHA-256.
        public static let uploadCorrupt = Code(rawValue: "upload_corrupt")
        /// A dataset path exists on some nodes but not on every node that may read it (a usage error).
        public static let pathNotOnEveryNode = Code(rawValue: "path_not_on_every_node")
        /// The dataset's paths match no image file on the cluster (a usage error).
        public static let noInputs = Code(rawValue: "no_inputs")
        /// The source argument is neither a readable local file, a cluster path nor a stream URL (a usage error).
        public static let invalidSource = Code(rawValue: "invalid_source")
        /// `--resume` over a journal answered with another model or other settings (a usage error).
        public static let resumeSettingsDiffer = Code(rawValue: "resume_settings_differ")
        /// The cluster side answered with something the client refuses to act on: an output's name that is not a
        /// plain path inside the run's output folder (see ``ClusterSession/download(_:into:)``), a piece longer
        /// than asked for. Spelt as ``GatewayError``'s and ``DetectionError``'s `bad_response`.
        public static let badResponse = Code(rawValue: "bad_response")
        /// Another failure of the work on the cluster; ``OnClusterError/traceback`` has Python's traceback.
        public static let sessionFailed = Code(rawValue: "session_failed")
        /// The session made no progress with its client for its lease (``VideoOptions/lease``) and stopped itself:
        /// the client was gone, or stopped polling.
        public static let clientGone = Code(rawValue: "client_gone")
        /// The upload could not be written on the cluster (its disk).
        public static let uploadFailed = Code(rawValue: "upload_failed")
        /// An output (`annotated.mp4`) could not be written on the cluster.
        public static let outputFailed = Code(rawValue: "output_failed")
        /// The model file is missing on a node that may host a detector (a dataset run), or on the head (a video).
        public static let modelNotOnEveryNode = Code(rawValue: "model_not_on_every_node")
        /// The detection service's model could not be found for a video's session.
        public static let modelNotFound = Code(rawValue: "model_not_found")
        /// No alive node has the CPUs or GPUs one detector asks for, or the nodes could never hold the detectors
        /// asked for (`--actors`) and a read at once.
        public static let noNodeFits = Code(rawValue: "no_node_fits")
        /// Every GPU is held by other work (the detection service's replicas, say) for the whole wait.
        public static let noFreeGPU = Code(rawValue: "no_free_gpu")
        /// Too few CPUs are free on the nodes for the detectors and a read, for the whole wait.
        public static let noFreeCPU = Code(rawValue: "no_free_cpu")
        /// The dataset's paths could not be listed on a node.
        public static let listingFailed = Code(rawValue: "listing_failed")
        /// Listing the dataset's paths on the nodes took too long.
        public static let listingTimedOut = Code(rawValue: "listing_timed_out")
        /// The detectors could not start, or failed on every batch.
        public static let detectionFailed = Code(rawValue: "detection_failed")
        /// A video's detection failed on several batches in a row.
        public static let detectorFailed = Code(rawValue: "detector_failed")
        /// A video's session could not reach the detection service's replicas.
        public static let detectorUnavailable = Code(rawValue: "detector_unavailable")
    }

    public var code: Code
    public var message: String
    public var remedy: String?
    /// Python's traceback, for ``Code/sessionFailed``.
    public var traceback: String?

    public init(_ code: Code, _ message: String, remedy: String? = nil, traceback: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.traceback = traceback
    }

    public var description: String { sentence("\(code): \(message)", remedy: remedy) }

    public var isUsageError: Bool {
        [.sourceNotFound, .pathNotOnEveryNode, .noInputs, .invalidSource, .resumeSettingsDiffer].contains(code)
    }
}
