import RayLANCore
import RayLANGateway
/// One detected object.
public struct Detection: Sendable, Hashable, Codable {
    /// `[x1, y1, x2, y2]` in the original image's pixels.
    public var box: [Double]
    public var score: Double
    public var classID: Int
    public var className: String
    /// The object's track id in a tracked video (``VideoOptions/tracker``): the same object keeps it from frame to
    /// frame. Nil for images and untracked videos (and then left out of the JSON).
    public var trackID: Int?

    public init(box: [Double], score: Double, classID: Int, className: String, trackID: Int? = nil) {
        self.box = box
        self.score = score
        self.classID = classID
        self.className = className
        self.trackID = trackID
    }

    enum CodingKeys: String, CodingKey {
        case box, score
        case classID = "class_id"
        case className = "class_name"
        case trackID = "track_id"
    }
}

/// The service's answer for one image.
public struct DetectionResult: Sendable, Hashable, Codable {
    /// The image as the service decoded it.
    public struct Image: Sendable, Hashable, Codable {
        public var width: Int
        public var height: Int
        /// `jpeg`, `png`, `webp` or `bmp`.
        public var format: String
    }

    /// The model id (its file name without extension).
    public var model: String
    public var image: Image
    public var detections: [Detection]
    /// How many images the service's dynamic batch held.
    public var batchSize: Int
    /// Milliseconds per stage: queue, decode, preprocess, inference, postprocess, total (server side).
    public var timingsMs: [String: Double]
    /// The annotated image (JPEG, base64), when asked for. Drawn on the image as sent: at the shrunk size when
    /// the client shrank it (``sent``).
    public var annotatedJPEG: String?
    /// What the client sent instead of the file, when it shrank it (``DownscaledImage``); nil when the file's own
    /// bytes were sent. Set by the client, not the service. Encoded as `sent`.
    public var sent: Sent?

    /// The shrunk JPEG a client sent instead of the file, and what the file was.
    public struct Sent: Sendable, Hashable, Codable {
        /// The shrunk image's width in pixels, as the service decoded it.
        public var width: Int
        /// The shrunk image's height in pixels, as the service decoded it.
        public var height: Int
        /// Bytes sent.
        public var bytes: Int
        /// The file's bytes.
        public var originalBytes: Int

        public init(width: Int, height: Int, bytes: Int, originalBytes: Int) {
            self.width = width
            self.height = height
            self.bytes = bytes
            self.originalBytes = originalBytes
        }

        enum CodingKeys: String, CodingKey {
            case width, height, bytes
            case originalBytes = "original_bytes"
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, image, detections, sent
        case batchSize = "batch_size"
        case timingsMs = "timings_ms"
        case annotatedJPEG = "annotated_jpeg"
    }
}

/// Per-request settings.
public struct DetectionOptions: Sendable, Hashable {
    /// Lowest score kept. Default 0.25.
    public var confidence: Double
    /// NMS IoU threshold. Default 0.7.
    public var iou: Double
    /// Only these class ids (each from 0 to ``classIDLimit``, exclusive); nil keeps all. Default nil.
    public var classes: [Int]?
    /// Class ids are below this (an int32, as the model's tensors hold them): the cluster refuses any other.
    public static let classIDLimit = 1 << 31
    /// Return the annotated image. Default false.
    public var annotate: Bool

    public init(confidence: Double = 0.25, iou: Double = 0.7, classes: [Int]? = nil, annotate: Bool = false) {
        self.confidence = confidence
        self.iou = iou
        self.classes = classes
        self.annotate = annotate
    }

    var query: String {
        var items = ["conf=\(confidence)", "iou=\(iou)"]
        if let classes, !classes.isEmpty { items.append("classes=" + classes.map(String.init).joined(separator: ",")) }
        if annotate { items.append("annotate=1") }
        return "?" + items.joined(separator: "&")
    }
}
