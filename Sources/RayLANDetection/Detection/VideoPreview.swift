import Foundation
import RayLANCore

/// A video session's picture of one processed frame, for a person watching the run (`raylan detect --view`): the
/// frame shrunk on the cluster (a JPEG) and its detections in the source's pixels. On the wire (raw bytes, no
/// base64): its ``Header`` as one JSON line, then the JPEG. Golden example of the header:
/// `contracts/preview_header.json` (`contract.preview` makes it).
public struct VideoPreview: Sendable, Hashable {
    /// What the picture shows.
    public struct Header: Sendable, Hashable, Codable {
        /// `preview`.
        public var type: String
        /// The frame's index in the source.
        public var frame: Int
        /// The frame's time in the source, in seconds.
        public var time: Double
        /// The frame's size in the source (the boxes' space; the JPEG is smaller).
        public var width: Int
        public var height: Int
        public var detections: [Detection]
        /// Milliseconds from the frame's read to its detections, on the cluster.
        public var latencyMs: Double?

        enum CodingKeys: String, CodingKey {
            case type, frame, time, width, height, detections
            case latencyMs = "latency_ms"
        }
    }

    public var header: Header
    /// The shrunk frame.
    public var jpeg: Data

    /// The longest header a preview may have (a frame's detections as JSON).
    public static let maxHeaderBytes = 1 << 20

    /// Reads a preview's bytes as the session sends them.
    /// - Throws: ``DetectionError`` `badResponse` for bytes that are not a header line and a JPEG.
    public init(_ data: Data) throws {
        let end = data.prefix(Self.maxHeaderBytes).firstIndex(of: UInt8(ascii: "\n"))
        guard let end, let header = try? JSONDecoder().decode(Header.self, from: data[data.startIndex..<end]),
            header.type == "preview", header.width > 0, header.height > 0
        else {
            throw DetectionError(.badResponse, "The cluster's preview is not a header line and a JPEG")
        }
        let jpeg = data[(end + 1)...]
        guard jpeg.starts(with: [0xFF, 0xD8]) else {
            throw DetectionError(.badResponse, "The cluster's preview of frame \(header.frame) is not a JPEG")
        }
        self.header = header
        self.jpeg = Data(jpeg)
    }
}
