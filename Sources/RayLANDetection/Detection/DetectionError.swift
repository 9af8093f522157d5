import Foundation
import RayLANCore
import RayLANGateway

/// An input that got no detections: an image the service could not process, a file that could not be read,
/// a service that could not be reached — or a detect run that could not start (no input matched).
///
/// It is also what `detections.jsonl` records for a failed input: it encodes as
/// `{"code": "<code>", "message": "…"}`, the service's own error shape.
public struct DetectionError: RayLANError, Sendable, Codable, Hashable {
    /// What kind of failure this is. Open, so a code a newer service sends still decodes; compare with
    /// `error.code == .decodeFailed`. Encodes as its string (`decode_failed`).
    public struct Code: StringValue {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The service received no bytes for the image.
        public static let empty = Code(rawValue: "empty")
        /// Not a JPEG, PNG, WebP or BMP.
        public static let unsupportedFormat = Code(rawValue: "unsupported_format")
        /// The image has more pixels than the service accepts.
        public static let tooLarge = Code(rawValue: "too_large")
        /// The bytes are not a valid image of their format (e.g. truncated).
        public static let decodeFailed = Code(rawValue: "decode_failed")
        /// The service refused the request itself (e.g. an invalid query value).
        public static let badRequest = Code(rawValue: "bad_request")
        /// The service refused the request's key (HTTP 401).
        public static let unauthorized = Code(rawValue: "unauthorized")
        /// The image fits the service's decoded-memory budget alone, not with the request's other images
        /// (``DetectionClient`` sends it again by itself).
        public static let overBudget = Code(rawValue: "over_budget")
        /// The local file could not be read.
        public static let unreadable = Code(rawValue: "unreadable")
        /// The service could not be reached or kept failing.
        public static let unavailable = Code(rawValue: "unavailable")
        /// The service's answer could not be understood.
        public static let badResponse = Code(rawValue: "bad_response")
        /// An output file for the input could not be written.
        public static let outputFailed = Code(rawValue: "output_failed")
        /// The input is not a regular file (a FIFO, a device, a socket): it is never read.
        public static let notAFile = Code(rawValue: "not_a_file")
        /// `resume` found a journal written with other settings (model, conf, iou, classes, imgsz): a usage error.
        public static let resumeSettingsDiffer = Code(rawValue: "resume_settings_differ")
        /// A run's input argument matched no image file (a usage error).
        public static let noInput = Code(rawValue: "no_input")
        /// A maximum side for the client's downscale (``MaxSide``) that is not `auto`, `off` or a whole number of
        /// pixels of 1 or more (a usage error).
        public static let invalidMaxSide = Code(rawValue: "invalid_max_side")
        /// The request's body is over the service's byte cap (the whole request is refused).
        public static let bodyTooLarge = Code(rawValue: "body_too_large")
        /// The request holds more images than the service takes at once (the whole request is refused).
        public static let tooManyFrames = Code(rawValue: "too_many_frames")
        /// The model failed on this image alone.
        public static let inferenceFailed = Code(rawValue: "inference_failed")
        /// The file could not be read on the cluster (a dataset run).
        public static let readFailed = Code(rawValue: "read_failed")
        /// A video frame's batch failed in the model.
        public static let detectionFailed = Code(rawValue: "detection_failed")

    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The service's body for a refused request or image, `{"error": {"code", "message"}}` (the cluster's
    /// `contract.error_answer`).
    struct Answer: Codable {
        var error: DetectionError
    }

    public var description: String { "\(code): \(message)" }
    public var isUsageError: Bool { code == .noInput || code == .resumeSettingsDiffer || code == .invalidMaxSide }
}
