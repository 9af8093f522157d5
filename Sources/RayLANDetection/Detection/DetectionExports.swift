import Crypto
import Foundation
import RayLANCore
import RayLANGateway

/// COCO and YOLO label files made from ``DetectionRecord``s.
public enum DetectionExports {
    /// A COCO `annotations.json` (images, annotations with `bbox` [x, y, w, h], `score` and, for a tracked video's
    /// frames, `track_id`; categories).
    public static func coco(_ records: [DetectionRecord], classNames: [Int: String]) throws -> Data {
        var images: [[String: Any]] = []
        var annotations: [[String: Any]] = []
        var names = classNames
        for (index, record) in records.enumerated() {
            guard let result = record.result else { continue }
            images.append([
                "id": index + 1, "file_name": record.path, "width": result.image.width, "height": result.image.height,
            ])
            for detection in result.detections {
                names[detection.classID] = detection.className
                let box = detection.box
                let width = box[2] - box[0]
                let height = box[3] - box[1]
                var annotation: [String: Any] = [
                    "id": annotations.count + 1, "image_id": index + 1, "category_id": detection.classID,
                    "bbox": [box[0], box[1], width, height], "area": width * height, "iscrowd": 0,
                    "score": detection.score,
                ]
                // A tracked video's frames: the object's track, as video annotation tools read it.
                if let track = detection.trackID { annotation["track_id"] = track }
                annotations.append(annotation)
            }
        }
        let categories = names.keys.sorted().map { ["id": $0, "name": names[$0]!] as [String: Any] }
        return try JSONSerialization.data(
            withJSONObject: ["images": images, "annotations": annotations, "categories": categories],
            options: [.prettyPrinted, .sortedKeys])
    }

    /// A YOLO label file: `class cx cy w h` normalised to the image size, one line per detection.
    public static func yolo(_ result: DetectionResult) -> String {
        let width = Double(result.image.width)
        let height = Double(result.image.height)
        return result.detections.map { detection in
            let box = detection.box
            let values = [
                (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height,
                (box[2] - box[0]) / width, (box[3] - box[1]) / height,
            ]
            return "\(detection.classID) " + values.map { String(format: "%.6f", $0) }.joined(separator: " ")
        }.joined(separator: "\n") + (result.detections.isEmpty ? "" : "\n")
    }

    /// Writes `data` to `relative` in `folder`, making the folders on the way; returns where.
    @discardableResult
    static func write(_ data: Data, to relative: String, in folder: URL) throws -> URL {
        let url = folder.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
        return url
    }

    /// The files over a whole run, in `folder`: `annotations.json` (COCO) with ``DetectionRun/Outputs/coco`` and
    /// `report.html` with ``DetectionRun/Outputs/report`` (`imageLink` and `elapsed` as for
    /// ``DetectionReport/html(_:imageLink:elapsed:)``). Returns the files written.
    @discardableResult
    static func writeRunFiles(
        _ records: [DetectionRecord], _ outputs: DetectionOutputs, in folder: URL,
        imageLink: (DetectionRecord) -> String?, elapsed: Double
    ) throws -> [URL] {
        var written: [URL] = []
        if outputs.contains(.coco) {
            written.append(try write(try coco(records, classNames: [:]), to: "annotations.json", in: folder))
        }
        if outputs.contains(.report) {
            let html = DetectionReport.html(records, imageLink: imageLink, elapsed: elapsed)
            written.append(try write(Data(html.utf8), to: "report.html", in: folder))
        }
        return written
    }

    /// Writes a YOLO label file for each record with a result, at `relativePath(record)` in `folder` (e.g.
    /// `labels/<name>.txt`); returns the `labels/` folder, once.
    static func writeLabels(
        _ records: [DetectionRecord], in folder: URL, relativePath: (DetectionRecord) -> String
    ) throws -> URL {
        for record in records {
            guard let result = record.result else { continue }
            try write(Data(yolo(result).utf8), to: relativePath(record), in: folder)
        }
        return folder.appendingPathComponent("labels", isDirectory: true)
    }

    /// Where an input's own output goes, relative to the output folder: `folder/<name>.<extension>`, distinct
    /// for distinct paths.
    ///
    /// The name is the input's path, extension kept, with its separators folded to `__` (`samples/a.jpg` →
    /// `samples__a.jpg.txt`; an absolute path starts with `__`). Where that fold could be ambiguous (a `..`
    /// component, one holding `__` or starting or ending with `_`) or the name would pass 255 bytes, the name
    /// ends instead with `___` and 12 hex digits of the path's SHA-256, after as much of the fold's end as fits
    /// (`x__a.jpg___0f3c…txt`). Names without a hash never hold `___`, so the two kinds never meet.
    public static func outputPath(of path: String, in folder: String, extension ext: String) -> String {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let fold = (path.hasPrefix("/") ? "__" : "") + components.joined(separator: "__")
        let isLossy =
            components.isEmpty
            || components.contains { $0 == ".." || $0.contains("__") || $0.hasPrefix("_") || $0.hasSuffix("_") }
        let plain = fold + "." + ext
        if !isLossy && plain.utf8.count <= 255 { return folder + "/" + plain }
        let digest = SHA256.hash(data: Data(path.utf8)).prefix(6).hexString
        let suffix = "___" + digest + "." + ext
        var tail = Substring(fold)
        while tail.utf8.count + suffix.utf8.count > 255 { tail = tail.dropFirst() }
        return folder + "/" + String(tail) + suffix
    }
}

/// The files a run writes besides `detections.jsonl` (``DetectionRun/Outputs``).
public struct DetectionOutputs: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `annotations.json` (COCO) over every input of the folder's journal (a video's: every detected frame).
    public static let coco = DetectionOutputs(rawValue: 1 << 0)
    /// `labels/<name>.txt` (YOLO) per input (a video's: per detected frame).
    public static let yolo = DetectionOutputs(rawValue: 1 << 1)
    /// `annotated/<name>.jpg` per input, drawn on the cluster.
    public static let annotated = DetectionOutputs(rawValue: 1 << 2)
    /// `report.html`.
    public static let report = DetectionOutputs(rawValue: 1 << 3)
}
