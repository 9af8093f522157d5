import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANDoctor

extension RayClusterTests.Main {
    /// The detection service on the shared local Ray (CPU): deployed from Swift, driven by `raylan detect`.
    @Suite("Detection service")
    struct DetectionTests {
        static let root = TestEnvironment.packageRoot
        static let ptModel = root.appendingPathComponent("models/shapes/shapes-yolo11n.pt").path
        static let onnxModel = root.appendingPathComponent("models/shapes/shapes-yolo11n.onnx").path
        static let samples = root.appendingPathComponent("samples")

        struct Truth: Decodable {
            struct Object: Decodable { var class_id: Int; var box: [Double] }
            struct Image: Decodable { var width: Int; var height: Int; var objects: [Object] }
            var images: [String: Image]
        }

        static func iou(_ a: [Double], _ b: [Double]) -> Double {
            let ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
            let iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
            let inter = ix * iy
            return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        }

        /// Deploys both shipped models (two applications at once) unless they run already.
        static func deployBoth(_ cluster: TestCluster) async throws {
            try await cluster.withConnection { ray in
                for model in [ptModel, onnxModel] {
                    let name = DetectionDeployment.defaultName(for: model) + (model.hasSuffix(".onnx") ? "-onnx" : "")
                    if try await ray.serveStatus().applications[name]?.status == .running { continue }
                    try await ray.deploy(
                        DetectionDeployment(model: model, name: name, gpusPerReplica: 0),
                        httpPort: cluster.ray.ports.serve)
                }
            }
        }

        @Test(
            "Two models are served at once; the samples' detections match the ground truth and Ultralytics' own predict"
        )
        func endToEnd() async throws {
            let cluster = try requireCluster()
            try await Self.deployBoth(cluster)
            let status = try await cluster.withConnection { try await $0.serveStatus() }
            #expect(status.applications["shapes-yolo11n"]?.status == .running)
            #expect(status.applications["shapes-yolo11n-onnx"]?.status == .running)

            let out = try TestEnvironment.makeTemporaryDirectory("raylan-detect")
            defer { try? FileManager.default.removeItem(at: out) }
            // The files as they are (no client-side shrink): the comparison with Ultralytics below is on the same pixels.
            let result = try await CommandRunner.raylan([
                "detect", Self.samples.path, "--address", cluster.address.description, "--out", out.path,
                "--format", "coco", "--annotate", "--report", "--no-deploy", "--max-side", "off",
            ])
            #expect(result.status == 0, "\(result)")
            let records = DetectionJournal.read(out.appendingPathComponent("detections.jsonl"))
            #expect(records.count == 12)
            #expect(records.allSatisfy { $0.succeeded })
            for name in ["annotations.json", "report.html"] {
                #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path))
            }
            let annotated = try FileManager.default.contentsOfDirectory(
                atPath: out.appendingPathComponent("annotated").path)
            #expect(annotated.count == 12)

            // Ground truth: held-out recall 0.98 and precision 0.998, so ≥ 90% of both on the samples.
            let truth = try JSONDecoder().decode(
                Truth.self, from: Data(contentsOf: Self.samples.appendingPathComponent("ground_truth.json")))
            var found = 0, missed = 0, wrong = 0
            for record in records {
                let result = try #require(record.result)
                let image = try #require(truth.images[(record.path as NSString).lastPathComponent])
                #expect(result.image.width == image.width && result.image.height == image.height)
                var used = Set<Int>()
                for object in image.objects {
                    let best = result.detections.enumerated()
                        .filter { $0.element.classID == object.class_id && !used.contains($0.offset) }
                        .map { (Self.iou(object.box, $0.element.box), $0.offset) }.max { $0.0 < $1.0 }
                    if let best, best.0 >= 0.5 { found += 1; used.insert(best.1) } else { missed += 1 }
                }
                wrong += result.detections.count - used.count
            }
            #expect(Double(found) / Double(found + missed) >= 0.9, "found \(found), missed \(missed)")
            #expect(Double(found) / Double(found + wrong) >= 0.9, "found \(found), wrong \(wrong)")

            // Ultralytics' own predict on the same files and weights, letterboxed to a square as the service does.
            let script = """
                import json, sys
                from ultralytics import YOLO
                model = YOLO(sys.argv[1])
                out = {}
                for path in sys.argv[2:]:
                    r = model.predict(path, conf=0.25, iou=0.7, rect=False, verbose=False, device="cpu")[0]
                    out[path] = [[int(c), float(s)] + [float(v) for v in b] for c, s, b in zip(r.boxes.cls, r.boxes.conf, r.boxes.xyxy)]
                print(json.dumps(out))
                """
            let local = try await CommandRunner.run(
                cluster.environment.python, ["-c", script, Self.ptModel] + records.map(\.path),
                environment: ["YOLO_OFFLINE": "1"])
            try #require(local.status == 0, "\(local)")
            let reference = try JSONDecoder().decode(
                [String: [[Double]]].self,
                from: Data(local.stdout.split(separator: "\n").last.map { Data($0.utf8) } ?? Data()))
            // One-to-one: each of Ultralytics' boxes takes the closest unused box of the same class. Float tolerance:
            // the same weights, square letterbox and decoder give the same numbers up to batch-size rounding
            // (measured: \(Self.measuredScore) in score, \(Self.measuredBox) px), so 5× that is allowed.
            var worstScore = 0.0, worstBox = 0.0
            for record in records {
                let mine = try #require(record.result).detections
                let theirs = try #require(reference[record.path])
                #expect(mine.count == theirs.count, "\(record.path)")
                var used = Set<Int>()
                for detection in theirs {
                    let candidates = mine.enumerated().filter {
                        $0.element.classID == Int(detection[0]) && !used.contains($0.offset)
                    }
                    let closest = candidates.min { a, b in
                        Self.boxDistance(a.element.box, Array(detection[2...]))
                            < Self.boxDistance(b.element.box, Array(detection[2...]))
                    }
                    guard let closest else {
                        Issue.record("\(record.path): no box of class \(Int(detection[0])) left for \(detection)")
                        continue
                    }
                    used.insert(closest.offset)
                    worstBox = max(worstBox, Self.boxDistance(closest.element.box, Array(detection[2...])))
                    worstScore = max(worstScore, abs(closest.element.score - detection[1]))
                }
            }
            #expect(worstBox <= 5 * Self.measuredBox, "largest box difference \(worstBox) px")
            #expect(worstScore <= 5 * Self.measuredScore, "largest score difference \(worstScore)")
        }

        /// The largest differences measured between the service and Ultralytics' own predict on the samples
        /// (over several runs, batch sizes 1–12).
        static let measuredBox = 0.005
        static let measuredScore = 5e-6

        /// The largest coordinate difference between two boxes, in pixels.
        static func boxDistance(_ a: [Double], _ b: [Double]) -> Double {
            zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        }

        @Test("The .pt and .onnx services give matching boxes; concurrent requests are batched")
        func backendsAndBatching() async throws {
            let cluster = try requireCluster()
            try await Self.deployBoth(cluster)
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.samples.path).filter {
                $0.hasSuffix(".jpg")
            }.sorted()
                .map { Self.samples.appendingPathComponent($0) }
            try await cluster.withConnection { ray in
                let pt = try await DetectionClient(cluster: ray, application: "shapes-yolo11n")
                let onnx = try await DetectionClient(cluster: ray, application: "shapes-yolo11n-onnx")
                let images = try files.map { try Data(contentsOf: $0) }
                let a = try await pt.detect(batch: images)
                let b = try await onnx.detect(batch: images)
                for (left, right) in zip(a, b) {
                    let l = try left.get().detections.sorted { $0.box.lexicographicallyPrecedes($1.box) }
                    let r = try right.get().detections.sorted { $0.box.lexicographicallyPrecedes($1.box) }
                    #expect(l.count == r.count)
                    for (x, y) in zip(l, r) {
                        #expect(x.classID == y.classID)
                        #expect(zip(x.box, y.box).allSatisfy { abs($0 - $1) < 2 })
                    }
                }
                var largest = 0
                var failures: [String] = []
                for await (file, result) in pt.results(for: files + files, concurrency: 16) {
                    switch result {
                    case .success(let value): largest = max(largest, value.batchSize)
                    case .failure(let error): failures.append("\(file.lastPathComponent): \(error)")
                    }
                }
                #expect(failures.isEmpty, "\(failures)")
                #expect(largest > 1, "no request shared a batch")

                // Several files per request, one request in flight: every file answers once, in input order, an
                // unreadable one with its own error, and a batch larger than one can only be a request's own images.
                let missing = Self.samples.appendingPathComponent("no-such-image.jpg")
                let mixed = Array(files.prefix(4)) + [missing] + Array(files.suffix(3))
                var answered: [URL] = []
                var grouped = 0
                for await (file, result) in pt.results(for: mixed, concurrency: 1, imagesPerRequest: 3) {
                    answered.append(file)
                    switch result {
                    case .success(let value):
                        grouped = max(grouped, value.batchSize)
                        #expect(file != missing)
                    case .failure(let error):
                        #expect(file == missing && error.code == .unreadable, "\(file): \(error)")
                    }
                }
                #expect(answered == mixed)
                #expect(grouped >= 2, "a request's images did not share a batch")
            }
        }

        @Test("Bad inputs are named per item while the rest completes; exit 5")
        func badInputs() async throws {
            let cluster = try requireCluster()
            try await Self.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-bad")
            defer { try? FileManager.default.removeItem(at: folder) }
            let good = try Data(contentsOf: Self.samples.appendingPathComponent("shapes_00.jpg"))
            try Data().write(to: folder.appendingPathComponent("empty.jpg"))
            try good.prefix(good.count / 3).write(to: folder.appendingPathComponent("truncated.jpg"))
            try Data("just text\n".utf8).write(to: folder.appendingPathComponent("text.jpg"))
            try Data("GIF89a\u{1}\0\u{1}\0\0\0\0;".utf8).write(to: folder.appendingPathComponent("anim.gif"))
            try good.write(to: folder.appendingPathComponent("good.jpg"))
            let huge = folder.appendingPathComponent("huge.png")
            let made = try await CommandRunner.run(
                cluster.environment.python,
                [
                    "-c",
                    "import sys; from PIL import Image; Image.new('RGB', (12000, 12000), (9, 9, 9)).save(sys.argv[1])",
                    huge.path,
                ])
            try #require(made.status == 0, "\(made)")
            let out = folder.appendingPathComponent("out")
            let inputs = ["empty.jpg", "truncated.jpg", "text.jpg", "anim.gif", "good.jpg", "huge.png"].map {
                folder.appendingPathComponent($0).path
            }
            let result = try await CommandRunner.raylan(
                ["detect"] + inputs + ["--address", cluster.address.description, "--out", out.path, "--no-deploy"])
            #expect(result.status == 5, "\(result)")
            let records = Dictionary(
                DetectionJournal.read(out.appendingPathComponent("detections.jsonl")).map {
                    (($0.path as NSString).lastPathComponent, $0)
                },
                uniquingKeysWith: { a, _ in a })
            #expect(records.count == inputs.count)
            #expect(records["good.jpg"]?.succeeded == true)
            #expect(records["empty.jpg"]?.error?.code == .empty)
            #expect(records["truncated.jpg"]?.error?.code == .decodeFailed)
            #expect(records["text.jpg"]?.error?.code == .unsupportedFormat)
            #expect(records["anim.gif"]?.error?.code == .unsupportedFormat)
            #expect(records["huge.png"]?.error?.code == .tooLarge)

            let emptyFolder = folder.appendingPathComponent("nothing-here")
            try FileManager.default.createDirectory(at: emptyFolder, withIntermediateDirectories: true)
            let none = try await CommandRunner.raylan([
                "detect", emptyFolder.path, "--address", cluster.address.description,
            ])
            #expect(none.status == 64, "\(none)")
            #expect(none.stderr.contains("matches no image file"))
        }

        @Test("--resume after an interrupted run finishes the rest, repeating and losing nothing")
        func resume() async throws {
            let cluster = try requireCluster()
            try await Self.deployBoth(cluster)
            let out = try TestEnvironment.makeTemporaryDirectory("raylan-resume")
            defer { try? FileManager.default.removeItem(at: out) }
            let arguments = [
                "detect", Self.samples.path, "--address", cluster.address.description, "--out", out.path, "--no-deploy",
                "--format", "yolo",
            ]
            #expect(try await CommandRunner.raylan(arguments).status == 0)
            // YOLO labels: one file per image, "class cx cy w h" normalised, matching the journal's boxes.
            let record = try #require(DetectionJournal.read(out.appendingPathComponent("detections.jsonl")).first)
            let first = try #require(record.result)
            let labelFolder = out.appendingPathComponent("labels")
            let labelFiles = try FileManager.default.contentsOfDirectory(atPath: labelFolder.path)
            #expect(labelFiles.count == 12)
            let stem = ((record.path as NSString).lastPathComponent as NSString).deletingPathExtension
            let labelFile = try #require(labelFiles.first { $0.hasSuffix(stem + ".jpg.txt") })
            let rows = try String(contentsOf: labelFolder.appendingPathComponent(labelFile), encoding: .utf8)
                .split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
            #expect(rows.count == first.detections.count)
            for detection in first.detections {
                let centre = (detection.box[0] + detection.box[2]) / 2 / Double(first.image.width)
                #expect(rows.contains { Int($0[0]) == detection.classID && abs($0[1] - centre) < 1e-5 })
            }
            // Simulate an interruption: keep 5 complete lines and a torn sixth.
            let journal = out.appendingPathComponent("detections.jsonl")
            let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
            let kept = lines.prefix(5).joined(separator: "\n") + "\n" + lines[5].prefix(20)
            try Data(kept.utf8).write(to: journal)
            let resumed = try await CommandRunner.raylan(arguments + ["--resume"])
            #expect(resumed.status == 0, "\(resumed)")
            #expect(resumed.stderr.contains("5 inputs already answered"))
            let records = DetectionJournal.read(journal)
            #expect(records.count == 12)
            #expect(Set(records.map(\.path)).count == 12)
            #expect(try String(contentsOf: journal, encoding: .utf8).split(separator: "\n").count == 12)
        }

        @Test(
            "An unknown model is a deploy error naming it with Ray's message, which doctor's check 8 shows without blaming the firewall; the other services keep running; --no-deploy on a missing service is a clear error"
        )
        func deployErrors() async throws {
            let cluster = try requireCluster()
            try await Self.deployBoth(cluster)
            let address = cluster.address.description
            let missing = try await CommandRunner.raylan(
                ["detect", Self.samples.path, "--address", address, "--model", "never-deployed.pt", "--no-deploy"])
            #expect(missing.status == 1, "\(missing)")
            #expect(missing.stderr.contains("'never-deployed' is not running"))

            let unknown = try await CommandRunner.raylan([
                "serve", "deploy", "--address", address, "--model", "no-such-model-raylan.pt", "--gpus-per-replica",
                "0", "--replicas", "1",
            ])
            #expect(unknown.status == 1, "\(unknown)")
            #expect(unknown.stderr.contains("'no-such-model-raylan' failed to deploy"), "\(unknown.stderr)")
            // Ray's message carries the replica's exception: Ultralytics could not find or fetch the weights.
            #expect(
                unknown.stderr.contains("no-such-model-raylan.pt") && unknown.stderr.contains(Self.missingWeightsText),
                "\(unknown.stderr)")
            let status = try await cluster.withConnection { try await $0.serveStatus() }
            #expect(status.applications["shapes-yolo11n"]?.status == .running)
            #expect(status.applications["shapes-yolo11n-onnx"]?.status == .running)

            // Doctor's check 8 (Serve) fails on the DEPLOY_FAILED application with Ray's error, and does not
            // send the user to the firewall: the ports answer.
            let report = await Doctor(Doctor.Configuration(address: address)).run()
            _ = try await cluster.withConnection { try await $0.deleteServeApplication("no-such-model-raylan") }
            let serve = try #require(report[.serve])
            #expect(serve.status == .fail, "\(serve)")
            #expect(serve.summary.contains("'no-such-model-raylan' is DEPLOY_FAILED"), "\(serve.summary)")
            #expect(serve.summary.contains(Self.missingWeightsText), "Ray's error is missing: \(serve.summary)")
            #expect(serve.remedy?.contains("firewall") == false, "\(serve.remedy ?? "")")
            #expect(report[.ports]?.status != .fail, "\(report[.ports].map(\.summary) ?? "")")
        }

        /// What Ultralytics raises for weights it can neither find nor download (no network here).
        static let missingWeightsText = "FileNotFoundError"
    }
}
