import Foundation
import RayLANCore

/// What a detection run reports, in order: one type for every source — images streamed from this machine
/// (``DetectionRun``), images read on the cluster (``ClusterDatasetRun``) and videos or live streams
/// (``VideoRun``). A run sends only the cases that happen in it; ``finished(_:)`` comes last, once, when the run
/// ends as it should.
public enum DetectionEvent: Sendable {
    /// The detection service is not running (or runs another model) and is being deployed.
    case deploying(DetectionDeployment)
    /// A step of getting ready to show: a deploy step Serve reports, the gateway's deploy, RayLAN's cluster code
    /// uploaded.
    case preparing(String)
    /// Images on the cluster: the paths are being looked up on every node.
    case checking
    /// A local video: bytes uploaded so far, of its size (an upload that resumes starts past 0).
    case uploading(sent: Int, total: Int)
    /// Images: the work starts; `progress` counts what is to do (and what a resumed journal had).
    case started(DetectionProgress)
    /// A video: its session opened the source (its width, height, source_fps, frame_count for files, live).
    case opened(JSONValue)
    /// One image's line, as its journal holds it: its result or its named error.
    case answered(DetectionRecord)
    /// One processed frame of a video, as its journal holds it.
    case frame(FrameResult)
    /// How far an image run is (after each ``answered(_:)`` of a streamed run; as the cluster counts for images
    /// on the cluster, the rate from the first answers).
    case progress(DetectionProgress)
    /// How far a video is: frames read, processed and dropped, fps, reconnects (when its session's counts
    /// change).
    case frames(JSONValue)
    /// A live stream broke; its session waits `delay` seconds and tries again (`attempt` of `of`).
    case reconnecting(attempt: Int, of: Int, delay: Double, message: String)
    /// The stream is back.
    case reconnected(String)
    /// A video's per-class counts over time (with ``VideoOptions/report``).
    case report(JSONValue)
    /// A processed frame's picture, shrunk on the cluster, with its detections (with
    /// ``VideoOptions/previewFPS``; at most that many a second, the newest when this client asks).
    case preview(VideoPreview)
    /// A result file downloaded from the cluster to this machine.
    case downloaded(URL)
    /// A file made on this machine from the results (COCO, YOLO labels, the report).
    case wrote(URL)
    /// The run's end, as its `run` returns it.
    case finished(DetectionSummary)
}

/// A detection run's outcome: one type for every source, encoded snake_case (as `--json` prints it and as the
/// cluster's summary lines hold it). The groups that belong to one source stay nil elsewhere: the on-cluster
/// fields for images read on the cluster, ``video`` for a video or stream.
public struct DetectionSummary: Sendable, Hashable, Codable {
    /// Inputs: every image the arguments expanded to; 1 for a video or stream.
    public var inputs: Int
    /// Inputs answered (a resumed journal's included); a video that reached its end.
    public var succeeded: Int
    /// Inputs with a named error in the journal.
    public var failed: Int
    /// Inputs already answered when resuming, not sent again.
    public var skipped: Int
    /// Seconds the run took (images on the cluster: there, the paths' check included).
    public var seconds: Double
    /// Images (or a video's frames) detected per second.
    public var imagesPerSecond: Double
    /// The local output folder; nil when nothing was written here.
    public var out: String?

    /// Images on the cluster: seconds from the start of detection to the first answers (the actors' start and
    /// model load).
    public var startupSeconds: Double?
    /// Images on the cluster: images detected per node (by address).
    public var nodes: [String: Int]?
    /// Images on the cluster: the backend the detectors ran, and why it was chosen.
    public var backend: String?
    public var backendReason: String?
    /// Images on the cluster: CPUs and GPUs each detector held, as asked or as the cluster chose.
    public var cpusPerActor: Double?
    public var gpusPerActor: Double?
    /// Images on the cluster and videos: the results' folder on the head node.
    public var clusterOutput: String?
    /// A video or stream: what its session counted.
    public var video: VideoSummary?

    public init(
        inputs: Int, succeeded: Int, failed: Int, skipped: Int = 0, seconds: Double, imagesPerSecond: Double,
        out: String? = nil
    ) {
        self.inputs = inputs
        self.succeeded = succeeded
        self.failed = failed
        self.skipped = skipped
        self.seconds = seconds
        self.imagesPerSecond = imagesPerSecond
        self.out = out
    }

    /// A video's run as its session summed it up.
    init(video: VideoSummary, out: String?, clusterOutput: String?) {
        self.init(
            inputs: 1, succeeded: 1, failed: 0, seconds: video.seconds, imagesPerSecond: video.fps, out: out)
        self.clusterOutput = clusterOutput
        self.video = video
    }

    enum CodingKeys: String, CodingKey {
        case inputs, succeeded, failed, skipped, seconds, out, nodes, backend, video
        case imagesPerSecond = "images_per_s"
        case startupSeconds = "startup_s"
        case backendReason = "backend_reason"
        case cpusPerActor = "cpus_per_actor"
        case gpusPerActor = "gpus_per_actor"
        case clusterOutput = "cluster_output"
    }
}

/// How far an image run is (``DetectionRun/Progress``).
public struct DetectionProgress: Sendable, Hashable {
    /// Inputs this run sends (those already answered in a resumed journal excluded).
    public var total: Int
    /// Inputs this run has answered so far.
    public var done: Int
    /// Of ``done``, those that failed.
    public var failed: Int
    /// Inputs already answered in the journal when resuming.
    public var skipped: Int
    /// Seconds since the first request.
    public var seconds: Double
    /// The rate as measured where the work runs, when it is not ``done`` over ``seconds``: a
    /// ``ClusterDatasetRun`` counts from the first answers, the detectors' start left out.
    public var measuredRate: Double? = nil

    /// Answered inputs per second.
    public var imagesPerSecond: Double { measuredRate ?? (seconds > 0 ? Double(done) / seconds : 0) }
    /// Seconds left at the current rate; nil before the first answer.
    public var secondsLeft: Double? {
        imagesPerSecond > 0 ? Double(total - done) / imagesPerSecond : nil
    }
}
