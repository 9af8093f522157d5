import RayLANCore
import RayLANGateway
/// How far one set of detections agrees with a reference set for the same image: the reference's boxes matched
/// one to one by a box of the same class with an IoU of at least a threshold (0.9 by default).
///
/// It measures what a change to the path (a shrunk image, another backend) does to the answers:
/// ```swift
/// var agreement = DetectionAgreement()
/// for (original, shrunk) in pairs { agreement += DetectionAgreement(reference: original, candidate: shrunk) }
/// print(agreement.share)  // 0.99: 99% of the original's boxes came back
/// ```
/// Matching is greedy by IoU, highest first, each box used once.
public struct DetectionAgreement: Sendable, Hashable, Codable {
    /// The reference's boxes matched.
    public var matched: Int
    /// The reference's boxes.
    public var reference: Int
    /// The candidate's boxes (more than ``matched``: boxes the reference does not have).
    public var candidate: Int

    /// No images yet: nothing matched out of nothing.
    public init() {
        matched = 0
        reference = 0
        candidate = 0
    }

    /// The agreement of `candidate` with `reference`, both for one image in the same pixels.
    /// - Parameter minimumIoU: the least intersection over union for a match. Default 0.9.
    public init(reference: [Detection], candidate: [Detection], minimumIoU: Double = 0.9) {
        var pairs: [(iou: Double, reference: Int, candidate: Int)] = []
        for (i, expected) in reference.enumerated() {
            for (j, found) in candidate.enumerated() where found.classID == expected.classID {
                let overlap = Self.iou(expected.box, found.box)
                if overlap >= minimumIoU { pairs.append((overlap, i, j)) }
            }
        }
        pairs.sort { ($0.iou, -$0.reference, -$0.candidate) > ($1.iou, -$1.reference, -$1.candidate) }
        var usedReference = Set<Int>()
        var usedCandidate = Set<Int>()
        for pair in pairs where !usedReference.contains(pair.reference) && !usedCandidate.contains(pair.candidate) {
            usedReference.insert(pair.reference)
            usedCandidate.insert(pair.candidate)
        }
        matched = usedReference.count
        self.reference = reference.count
        self.candidate = candidate.count
    }

    /// The share of the reference's boxes matched, 0–1; 1 when the reference has none.
    public var share: Double { reference == 0 ? 1 : Double(matched) / Double(reference) }

    /// Both images' counts together.
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        sum += rhs
        return sum
    }

    public static func += (lhs: inout Self, rhs: Self) {
        lhs.matched += rhs.matched
        lhs.reference += rhs.reference
        lhs.candidate += rhs.candidate
    }

    /// Intersection over union of two `[x1, y1, x2, y2]` boxes; 0 for boxes that do not overlap, are empty or
    /// are not four numbers.
    public static func iou(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == 4, b.count == 4 else { return 0 }
        let width = min(a[2], b[2]) - max(a[0], b[0])
        let height = min(a[3], b[3]) - max(a[1], b[1])
        guard width > 0, height > 0 else { return 0 }
        let intersection = width * height
        let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
        return union > 0 ? intersection / union : 0
    }
}
