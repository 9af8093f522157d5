import Foundation
import RayLANCore

/// One processed frame of a video: its detections, or the error that kept it from the detector.
public struct FrameResult: Sendable, Hashable, Codable {
    /// The frame's index in the source, from 0 (with a stride, every stride-th index; on a live stream, frames
    /// read, dropped ones included).
    public var frame: Int
    /// Seconds: the frame's timestamp in a file; since the stream was opened for a stream.
    public var time: Double
    /// Its detections (with ``Detection/trackID`` when tracking); empty when ``error`` is set.
    public var detections: [Detection]
    /// Why the frame has no detections (the model failed on it).
    public var error: DetectionError?
    /// The session's own JSON text of this line, where it came from one (``VideoRun``'s events): to print or keep
    /// as it is rather than encode again. Not part of the value: `==` and hashing ignore it.
    public internal(set) var text: String?

    enum CodingKeys: String, CodingKey { case frame, time, detections, error }

    public static func == (a: FrameResult, b: FrameResult) -> Bool {
        (a.frame, a.time, a.detections, a.error) == (b.frame, b.time, b.detections, b.error)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(frame)
        hasher.combine(time)
        hasher.combine(detections)
        hasher.combine(error)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        frame = try container.decode(Int.self, forKey: .frame)
        time = try container.decode(Double.self, forKey: .time)
        detections = try container.decodeIfPresent([Detection].self, forKey: .detections) ?? []
        error = try container.decodeIfPresent(DetectionError.self, forKey: .error)
    }

    /// As the cluster writes it (`contract.frame_line`): `detections`, or `error` without them.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(frame, forKey: .frame)
        try container.encode(time, forKey: .time)
        if let error {
            try container.encode(error, forKey: .error)
        } else {
            try container.encode(detections, forKey: .detections)
        }
    }
}

/// What a video's session counted at its end (its summary line; a run's ``DetectionSummary/video``).
public struct VideoSummary: Sendable, Hashable, Codable {
    public var framesRead: Int
    public var framesProcessed: Int
    /// Live frames dropped because the detector fell behind.
    public var framesDropped: Int
    public var seconds: Double
    /// Frames detected per second of the session.
    public var fps: Double
    public var width: Int?
    public var height: Int?
    public var sourceFPS: Double?

    enum CodingKeys: String, CodingKey {
        case framesRead = "frames_read", framesProcessed = "frames_processed", framesDropped = "frames_dropped"
        case seconds, fps, width, height
        case sourceFPS = "source_fps"
    }
}
