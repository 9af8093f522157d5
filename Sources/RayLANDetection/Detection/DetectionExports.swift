import Foundation
import RayLANCore
import RayLANGateway

/// COCO and YOLO label files made from ``DetectionRecord``s.
public enum DetectionExports {
    /// A COCO `annotations.json` (images, annotations with `bbox` [x, y, w, h] and `score`, categories).
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
                annotations.append([
                    "id": annotations.count + 1, "image_id": index + 1, "category_id": detection.classID,
                    "bbox": [box[0], box[1], width, height], "area": width * height, "iscrowd": 0,
                    "score": detection.score,
                ])
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
        _ records: [DetectionRecord], _ outputs: DetectionRun.Outputs, in folder: URL,
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
}
