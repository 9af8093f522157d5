import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests.Main {
    /// `--max-side` against the shipped model on the shared local Ray: what the model answers for shrunk JPEGs.
    @Suite("Client-side downscale against the service")
    struct DownscaleServiceTests {
        static let samples = DetectionTests.samples

        /// 40 JPEGs of 1280×720 made from the samples (padded to 16:9 without distortion, flipped four ways),
        /// written by Pillow from the test venv.
        static func makeLargeSet(in folder: URL, python: String) async throws {
            let script = """
                import sys
                from pathlib import Path
                from PIL import Image, ImageOps
                sources = sorted(Path(sys.argv[1]).glob("*.jpg"))
                made = 0
                for flips in range(4):
                    for source in sources:
                        if made == 40:
                            break
                        image = ImageOps.pad(Image.open(source).convert("RGB"), (1280, 720), color=(118, 118, 118))
                        if flips & 1:
                            image = ImageOps.mirror(image)
                        if flips & 2:
                            image = ImageOps.flip(image)
                        image.save(Path(sys.argv[2]) / f"large_{made:02d}.jpg", quality=92)
                        made += 1
                """
            let made = try await CommandRunner.run(python, ["-c", script, samples.path, folder.path])
            try #require(made.status == 0, "\(made)")
        }

        @Test(
            "raylan detect's default (auto: the model's 320) gives the boxes of the original files (≥ 99% at IoU ≥ 0.9, same class) in their pixels"
        )
        func agreesWithOriginals() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-downscale")
            defer { try? FileManager.default.removeItem(at: folder) }
            let large = folder.appendingPathComponent("large")
            try FileManager.default.createDirectory(at: large, withIntermediateDirectories: true)
            try await Self.makeLargeSet(in: large, python: cluster.environment.python)
            let inputs = [Self.samples.path, large.path]

            let imageSize = try await cluster.withConnection { ray in
                try await DetectionClient(cluster: ray, application: "shapes-yolo11n").modelImageSize()
            }
            #expect(imageSize == 320)

            // Shrunk: the CLI with no --max-side. Originals: the library with .off.
            let shrunkOut = folder.appendingPathComponent("auto")
            let detect = try await CommandRunner.raylan([
                "detect", Self.samples.path, large.path, "--address", cluster.address.description, "--out",
                shrunkOut.path, "--no-deploy",
            ])
            #expect(detect.status == 0, "\(detect)")
            let originalRun = DetectionRun(
                inputs: inputs, output: folder.appendingPathComponent("off"), service: .running("shapes-yolo11n"),
                maxSide: .off)
            let summary = try await cluster.withConnection { try await originalRun.run(on: $0) }
            #expect(summary.inputs == 52 && summary.failed == 0)

            let shrunk = Dictionary(
                DetectionJournal.read(shrunkOut.appendingPathComponent("detections.jsonl")).map { ($0.path, $0) },
                uniquingKeysWith: { a, _ in a })
            let originals = DetectionJournal.read(originalRun.journalURL)
            try #require(originals.count == 52 && shrunk.count == 52)
            let truth = try JSONDecoder().decode(
                DetectionTests.Truth.self,
                from: Data(contentsOf: Self.samples.appendingPathComponent("ground_truth.json")))

            var agreement = DetectionAgreement()
            var samplesAgreement = DetectionAgreement()
            var bytes = (original: 0, sent: 0)
            var unmatched: [String] = []
            for original in originals {
                let name = (original.path as NSString).lastPathComponent
                let reference = try #require(original.result, "\(original.path): \(String(describing: original.error))")
                let result = try #require(shrunk[original.path]?.result, "\(original.path) failed when shrunk")
                // The size each result reports is the file's own, from the ground truth or as made.
                let size = truth.images[name].map { ($0.width, $0.height) } ?? (1280, 720)
                #expect(reference.image.width == size.0 && reference.image.height == size.1, "\(name)")
                #expect(result.image.width == size.0 && result.image.height == size.1, "\(name)")
                #expect(reference.sent == nil, "\(name): sent shrunk with max side off")

                // Every input's longer side passes 320, so each was shrunk, to 320 or more and fewer bytes.
                let sent = try #require(result.sent, "\(name) was not shrunk")
                let fileBytes = try FileManager.default.attributesOfItem(atPath: original.path)[.size] as? Int
                #expect(sent.originalBytes == fileBytes, "\(name)")
                #expect(sent.bytes < sent.originalBytes, "\(name)")
                #expect(max(sent.width, sent.height) >= 320 && max(sent.width, sent.height) < max(size.0, size.1))
                bytes.original += sent.originalBytes
                bytes.sent += sent.bytes
                for detection in result.detections {
                    #expect(detection.box[0] >= 0 && detection.box[2] <= Double(size.0), "\(name): \(detection.box)")
                    #expect(detection.box[1] >= 0 && detection.box[3] <= Double(size.1), "\(name): \(detection.box)")
                }
                let one = DetectionAgreement(reference: reference.detections, candidate: result.detections)
                agreement += one
                if truth.images[name] != nil { samplesAgreement += one }
                if one.matched < one.reference {
                    unmatched.append("\(name): \(one.matched) of \(one.reference) (shrunk: \(result.detections.count))")
                }
            }
            print(
                "downscale agreement: samples \(samplesAgreement.matched)/\(samplesAgreement.reference) "
                    + "(shrunk run \(samplesAgreement.candidate) boxes), all \(agreement.matched)/\(agreement.reference) "
                    + "(shrunk run \(agreement.candidate) boxes); bytes \(bytes.original) → \(bytes.sent)")
            #expect(agreement.reference > 100, "too few boxes to measure: \(agreement)")
            #expect(agreement.share >= 0.99, "\(agreement); \(unmatched)")
            #expect(agreement.candidate <= agreement.reference + agreement.reference / 50, "\(agreement)")

            // The shrunk run still finds the samples' ground truth (as endToEnd asks of the originals).
            var found = 0
            var missed = 0
            var wrong = 0
            for (path, record) in shrunk {
                guard let image = truth.images[(path as NSString).lastPathComponent] else { continue }
                let detections = try #require(record.result).detections
                var used = Set<Int>()
                for object in image.objects {
                    let best = detections.enumerated()
                        .filter { $0.element.classID == object.class_id && !used.contains($0.offset) }
                        .map { (DetectionAgreement.iou(object.box, $0.element.box), $0.offset) }.max { $0.0 < $1.0 }
                    if let best, best.0 >= 0.5 {
                        found += 1
                        used.insert(best.1)
                    } else {
                        missed += 1
                    }
                }
                wrong += detections.count - used.count
            }
            #expect(Double(found) / Double(found + missed) >= 0.9, "found \(found), missed \(missed)")
            #expect(Double(found) / Double(found + wrong) >= 0.9, "found \(found), wrong \(wrong)")
        }
    }
}
