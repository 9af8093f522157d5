import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests.Main {
    /// `--on-cluster` images: Ray Data on the cluster, the model in an actor pool, results written on the head.
    @Suite("Datasets on the cluster (Ray Data)")
    struct OnClusterDatasetTests {
        static let deployment = DetectionDeployment(
            model: DetectionTests.ptModel, name: "shapes-yolo11n", gpusPerReplica: 0)

        /// A journal's lines by path.
        static func lines(_ url: URL) throws -> [String: JSONValue] {
            let text = try String(contentsOf: url, encoding: .utf8)
            var out: [String: JSONValue] = [:]
            for line in text.split(separator: "\n") {
                let value = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
                if let path = value["path"]?.stringValue { out[path] = value }
            }
            return out
        }

        @Test(
            "The samples on the cluster's disk: one line per file, downloaded with --out, and the same detections as the service gives for the same files"
        )
        func equalsTheService() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let out = try TestEnvironment.makeTemporaryDirectory("raylan-dataset")
            defer { try? FileManager.default.removeItem(at: out) }
            let clusterOut = out.appendingPathComponent("on-cluster").path
            var run = ClusterDatasetRun(
                paths: [DetectionTests.samples.path], deployment: Self.deployment, clusterOutput: clusterOut,
                output: out.appendingPathComponent("downloaded"))
            run.settings.gpusPerActor = 0
            run.httpPort = cluster.ray.ports.serve
            let summary = try await cluster.withConnection { ray in try await run.run(on: ray) }
            #expect(summary.inputs == 12 && summary.succeeded == 12 && summary.failed == 0, "\(summary)")
            print(
                String(
                    format: "ON-CLUSTER samples: %.1f images/s (%@)", summary.imagesPerSecond, "\(summary.nodes ?? [:])"
                ))
            // The downloaded journal is a streamed run's: its lines read as DetectionRecords, with the settings a
            // streamed run records for the same model (its content's identity) and options.
            let records = DetectionJournal.read(out.appendingPathComponent("downloaded/detections.jsonl"))
            #expect(records.count == 12 && Set(records.map(\.path)).count == 12)
            let settings = DetectionRecord.Settings(model: try Self.deployment.modelIdentity(), options: run.options)
            #expect(records.allSatisfy { $0.settings == settings }, "\(records.first?.settings as Any)")
            try await cluster.withConnection { ray in
                let client = try await DetectionClient(cluster: ray, application: "shapes-yolo11n")
                for record in records {
                    let path = record.path
                    let expected = try await client.detect(try Data(contentsOf: URL(fileURLWithPath: path)))
                    let result = try #require(record.result, "\(path): \(record)")
                    #expect(result.model == expected.model, "\(result.model) vs \(expected.model)")
                    #expect(result.image == expected.image && result.batchSize >= 1, "\(path)")
                    let got = result.detections
                    #expect(got.count == expected.detections.count, "\(path)")
                    for (a, b) in zip(got, expected.detections) {
                        #expect(a.classID == b.classID, "\(path)")
                        #expect(abs(a.score - b.score) < 1e-3, "\(path): \(a.score) vs \(b.score)")
                        #expect(zip(a.box, b.box).allSatisfy { abs($0 - $1) < 0.5 }, "\(path): \(a.box) vs \(b.box)")
                    }
                }
            }
        }

        @Test(
            "A corrupt file gets its named error and the others their results; --resume keeps the answers and the file's own errors, as a streamed run does, and detects again a file whose read failed; a path that matches nothing is a usage error"
        )
        func resumeAndErrors() async throws {
            let cluster = try requireCluster()
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-dataset")
            defer { try? FileManager.default.removeItem(at: folder) }
            let images = folder.appendingPathComponent("images")
            try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
            for name in ["shapes_00.jpg", "shapes_01.jpg", "shapes_02.jpg"] {
                try FileManager.default.copyItem(
                    at: DetectionTests.samples.appendingPathComponent(name), to: images.appendingPathComponent(name))
            }
            try Data("not an image".utf8).write(to: images.appendingPathComponent("broken.jpg"))
            var run = ClusterDatasetRun(
                paths: [images.path], deployment: Self.deployment,
                clusterOutput: folder.appendingPathComponent("on-cluster").path)
            run.settings.gpusPerActor = 0
            run.httpPort = cluster.ray.ports.serve
            let first = try await cluster.withConnection { ray in try await run.run(on: ray) }
            #expect(first.succeeded == 3 && first.failed == 1 && first.skipped == 0, "\(first)")
            let journalURL = folder.appendingPathComponent("on-cluster/detections.jsonl")
            let journal = try Self.lines(journalURL)
            let broken = images.appendingPathComponent("broken.jpg").path
            #expect(journal[broken]?["error"]?["code"] == .string("unsupported_format"), "\(journal)")
            // The corrupt file's error is its own: a resume keeps it, as a streamed run's does. A read that failed
            // is not (the file may be there now): put one in the journal, for an answered file, as a run would.
            let flaky = images.appendingPathComponent("shapes_01.jpg").path
            let text = try String(contentsOf: journalURL, encoding: .utf8)
            let edited = try text.split(separator: "\n").map { line -> String in
                let value = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
                guard value["path"]?.stringValue == flaky else { return String(line) }
                // The line's own settings kept: a resume refuses a journal made with others.
                let failed: JSONValue = .object([
                    "path": .string(flaky), "node": .string("n"), "run": value["run"] ?? .null,
                    "error": .object(["code": .string("read_failed"), "message": .string("gone for now")]),
                ])
                return String(decoding: try JSONEncoder().encode(failed), as: UTF8.self)
            }
            try Data((edited.joined(separator: "\n") + "\n").utf8).write(to: journalURL)
            run.resume = true
            // The resumed run downloads its results and makes COCO, YOLO and the report from every line.
            let downloaded = folder.appendingPathComponent("downloaded")
            run.output = downloaded
            run.exports = [.coco, .yolo, .report]
            let recorder = EventRecorder<DetectionEvent>()
            let second = try await cluster.withConnection { ray in try await run.run(on: ray, events: recorder.record) }
            // As a streamed run counts: every input's line, the kept ones included.
            #expect(second.skipped == 3 && second.failed == 1 && second.succeeded == 3, "\(second)")
            #expect(recorder.finished == [second])
            // The one file done again came as the streamed run's record, with its node: answered this time.
            let records = recorder.events.compactMap { if case .answered(let record) = $0 { record } else { nil } }
            #expect(
                records.map(\.path) == [flaky] && records.allSatisfy { $0.node != nil && $0.succeeded }, "\(records)")
            // Progress as a streamed run counts it: the resumed run has the one file to do, and does it.
            let progress = recorder.events.compactMap { if case .progress(let p) = $0 { p } else { nil } }
            #expect(progress.allSatisfy { $0.total == 1 && $0.skipped == 3 && $0.done <= 1 }, "\(progress)")
            #expect(progress.last?.done == 1 && progress.last?.failed == 0, "\(progress)")
            let after = try Self.lines(journalURL)
            #expect(after.count == 4 && after[broken]?["error"]?["code"] == .string("unsupported_format"), "\(after)")
            // The exports hold the three answered images: two kept from the first run, one answered again.
            let answered = after.values.filter { $0["result"] != nil }
            #expect(answered.count == 3)
            let coco = try JSONDecoder().decode(
                JSONValue.self, from: Data(contentsOf: downloaded.appendingPathComponent("annotations.json")))
            guard case .array(let cocoImages) = coco["images"], case .array(let annotations) = coco["annotations"]
            else {
                Issue.record("annotations.json: \(coco)")
                return
            }
            #expect(
                Set(cocoImages.compactMap { $0["file_name"]?.stringValue })
                    == Set(answered.compactMap { $0["path"]?.stringValue }))
            func detections(of line: JSONValue) -> [JSONValue] {
                if case .array(let items) = line["result"]?["detections"] { items } else { [] }
            }
            let allDetections = answered.flatMap(detections(of:))
            #expect(annotations.count == allDetections.count && !allDetections.isEmpty)
            for line in answered {
                let path = try #require(line["path"]?.stringValue)
                let labels = try String(
                    contentsOf: downloaded.appendingPathComponent(
                        DetectionExports.outputPath(of: path, in: "labels", extension: "txt")), encoding: .utf8)
                let classes = labels.split(separator: "\n").compactMap {
                    $0.split(separator: " ").first.flatMap { Int($0) }
                }
                let expected = detections(of: line).compactMap { $0["class_id"]?.doubleValue.map(Int.init) }
                #expect(classes == expected, "\(path): \(labels)")
            }
            let report = try String(contentsOf: downloaded.appendingPathComponent("report.html"), encoding: .utf8)
            #expect(report.contains("broken.jpg") && report.contains("shapes_02.jpg"))
            // The detectors' timings travel in each record, so the report's time per image is not empty.
            #expect(report.contains("<td>inference</td>"), "\(report)")

            var nothing = run
            nothing.paths = [folder.path + "/no-such-folder"]
            await #expect {
                try await cluster.withConnection { ray in _ = try await nothing.run(on: ray) }
            } throws: { ($0 as? OnClusterError)?.code == .noInputs && ($0 as? OnClusterError)?.isUsageError == true }
        }
    }
}
