import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// The golden wire examples in `contracts/` (made by `cluster/raylan_common/contract.py`, checked by
/// `cluster/tests/test_contract.py`) decode into the Swift types and encode back to the same JSON, so that a
/// field added, renamed or dropped on one side only fails here or there.
@Suite("Wire contracts shared with the cluster code")
struct ContractTests {
    static let folder = TestEnvironment.packageRoot.appendingPathComponent("contracts")

    /// Keys that tell the cluster's lines apart and that no Swift type keeps.
    static let routing: Set<String> = ["type"]

    /// `value` with null members and routing keys left out, at every depth (null and absent mean the same on
    /// the wire).
    static func normalized(_ value: JSONValue, top: Bool = true) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(
                members.filter { $0.value != .null && !(top && routing.contains($0.key)) }.mapValues {
                    normalized($0, top: false)
                })
        case .array(let items): return .array(items.map { normalized($0, top: false) })
        default: return value
        }
    }

    /// The file's JSON, and what decoding it as `T` and encoding it again gives.
    static func roundTrip<T: Codable>(_ name: String, as type: T.Type) throws -> (golden: JSONValue, again: JSONValue) {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        let golden = try JSONDecoder().decode(JSONValue.self, from: data)
        let decoded = try JSONDecoder().decode(T.self, from: data)
        let again = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(decoded))
        return (normalized(golden), normalized(again))
    }

    @Test(
        "Each golden file decodes into its Swift type and encodes back to the same JSON",
        arguments: [
            "detection_result.json", "frame_line.json", "frame_line_error.json", "error_answer.json", "poll_page.json",
            "poll_page_failed.json", "video_session.json", "dataset_session.json", "detection_record.json",
            "detection_record_error.json", "preview_header.json",
        ])
    func roundTrips(name: String) throws {
        let (golden, again): (JSONValue, JSONValue)
        switch name {
        case "detection_result.json": (golden, again) = try Self.roundTrip(name, as: DetectionResult.self)
        case "error_answer.json": (golden, again) = try Self.roundTrip(name, as: DetectionError.Answer.self)
        case "poll_page.json", "poll_page_failed.json":
            (golden, again) = try Self.roundTrip(name, as: ClusterSession.Poll.self)
        case "video_session.json": (golden, again) = try Self.roundTrip(name, as: VideoSessionSpec.self)
        case "dataset_session.json": (golden, again) = try Self.roundTrip(name, as: DatasetSessionSpec.self)
        case "detection_record.json", "detection_record_error.json":
            (golden, again) = try Self.roundTrip(name, as: DetectionRecord.self)
        case "preview_header.json": (golden, again) = try Self.roundTrip(name, as: VideoPreview.Header.self)
        default: (golden, again) = try Self.roundTrip(name, as: FrameResult.self)
        }
        #expect(golden == again, "\(name): the cluster's \(golden)\nSwift's \(again)")
    }

    @Test("A preview's bytes: the golden header as one line, then the JPEG; anything else is a bad response")
    func preview() throws {
        let header = try Data(contentsOf: Self.folder.appendingPathComponent("preview_header.json"))
        let line = try JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: header))
        let jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x0A, 0x00])  // a newline inside the JPEG is the JPEG's
        let preview = try VideoPreview(line + Data("\n".utf8) + jpeg)
        #expect(preview.jpeg == jpeg)
        #expect(preview.header.frame == 12 && preview.header.width == 1280 && preview.header.latencyMs == 48.5)
        #expect(preview.header.detections.first?.trackID == 3)
        for bad in [Data(), line, line + Data("\nnot a jpeg".utf8), Data("{}\n".utf8) + jpeg] {
            #expect(throws: DetectionError.self) { try VideoPreview(bad) }
        }
    }

    @Test("Every golden file is checked here (error_codes.json by ErrorCodeTests)")
    func everyFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter {
            $0.hasSuffix(".json")
        }
        #expect(
            files.sorted() == [
                "dataset_session.json", "detection_record.json", "detection_record_error.json",
                "detection_result.json", "error_answer.json", "error_codes.json",
                "frame_line.json", "frame_line_error.json", "gateway_config.json", "naive_service_config.json",
                "poll_page.json", "poll_page_failed.json", "preview_header.json", "service_config.json",
                "video_session.json", "vocabulary.json",
            ])
    }

    @Test("One summary for every source (what 'raylan detect --json' prints), snake_case, each source's group kept")
    func summariesSnakeCase() throws {
        func keys<T: Codable>(_ json: String, as type: T.Type) throws -> (given: Set<String>, again: Set<String>) {
            let value = try JSONDecoder().decode(T.self, from: Data(json.utf8))
            let again = try JSONDecoder().decode([String: JSONValue].self, from: JSONEncoder().encode(value))
            let given = try JSONDecoder().decode([String: JSONValue].self, from: Data(json.utf8))
            return (Set(given.keys), Set(again.keys))
        }
        let images = try keys(
            #"{"inputs": 2, "succeeded": 1, "failed": 1, "skipped": 0, "seconds": 1.5, "images_per_s": 1.3, "out": "o"}"#,
            as: DetectionSummary.self)
        // The cluster's summary line of a dataset run, read as it comes.
        let dataset = try keys(
            #"{"inputs": 2, "succeeded": 2, "failed": 0, "skipped": 0, "seconds": 3, "images_per_s": 1, "startup_s": 1, "nodes": {"10.0.0.2": 2}, "backend": "tensor", "backend_reason": "matches", "cpus_per_actor": 1, "gpus_per_actor": 0, "cluster_output": "/c", "out": "o"}"#,
            as: DetectionSummary.self)
        let counts =
            #"{"frames_read": 3, "frames_processed": 3, "frames_dropped": 0, "seconds": 1, "fps": 3, "width": 64, "height": 48, "source_fps": 30}"#
        let video = try keys(counts, as: VideoSummary.self)
        for (given, again) in [images, dataset, video] {
            #expect(given == again)
            #expect(again.allSatisfy { $0 == $0.lowercased() }, "\(again.sorted())")
        }
        // A video's run: the same summary, its session's counts in its group.
        let session = try JSONDecoder().decode(VideoSummary.self, from: Data(counts.utf8))
        let run = DetectionSummary(video: session, out: "o", clusterOutput: nil)
        let encoded = try JSONDecoder().decode([String: JSONValue].self, from: JSONEncoder().encode(run))
        #expect(
            Set(encoded.keys) == [
                "inputs", "succeeded", "failed", "skipped", "seconds", "images_per_s", "out", "video",
            ])
        #expect(encoded["images_per_s"] == .number(3) && encoded["video"]?["frames_processed"] == .number(3))
        #expect(try JSONDecoder().decode(DetectionSummary.self, from: JSONEncoder().encode(run)) == run)
    }

    @Test("The golden values arrive as the Swift API names them")
    func values() throws {
        let data = try Data(contentsOf: Self.folder.appendingPathComponent("frame_line.json"))
        let frame = try JSONDecoder().decode(FrameResult.self, from: data)
        #expect(frame.frame == 12 && frame.time == 0.4 && frame.error == nil)
        #expect(frame.detections.map(\.trackID) == [3, nil])
        #expect(frame.detections.first?.className == "square" && frame.detections.first?.classID == 1)
        let failed = try JSONDecoder().decode(
            FrameResult.self, from: Data(contentsOf: Self.folder.appendingPathComponent("frame_line_error.json")))
        #expect(failed.error?.code.rawValue == "detection_failed" && failed.detections.isEmpty)
        let record = try JSONDecoder().decode(
            DetectionRecord.self, from: Data(contentsOf: Self.folder.appendingPathComponent("detection_record.json")))
        #expect(record.settings?.model?.backend == "pt" && record.settings?.model?.id.hasPrefix("sha256:") == true)
        #expect(record.settings?.classes == [0, 1] && record.settings?.imageSize == 640)
        #expect(record.settings?.maxSide == "off" && record.node == "10.0.0.2" && record.isFinal)
        #expect(record.result?.batchSize == 16 && record.result?.detections.first?.className == "square")
    }

    /// The keys of an object, and of each object member's, as "key" and "key.inner".
    static func keyPaths(_ value: JSONValue) -> Set<String> {
        guard case .object(let members) = value else { return [] }
        var paths = Set(members.keys)
        for (key, member) in members {
            guard case .object(let inner) = member, key != "timings_ms" else { continue }
            paths.formUnion(inner.keys.map { "\(key).\($0)" })
        }
        return paths
    }

    @Test(
        "A streamed run's journal line has the shape of the cluster's (detection_record.json), less what is the cluster's"
    )
    func streamedRecordShape() throws {
        let golden = try JSONDecoder().decode(
            JSONValue.self, from: Data(contentsOf: Self.folder.appendingPathComponent("detection_record.json")))
        let decoded = try JSONDecoder().decode(DetectionRecord.self, from: JSONEncoder().encode(golden))
        var streamed = DetectionRecord(path: "a.jpg", result: decoded.result, settings: decoded.settings)
        let journal = try TestEnvironment.makeTemporaryDirectory("raylan-contract")
        defer { try? FileManager.default.removeItem(at: journal) }
        let writer = try DetectionJournal.new(in: journal)
        try writer.append(streamed)
        streamed.result = nil
        streamed.error = DetectionError(.unavailable, "x")
        try writer.append(streamed)
        let lines = try String(contentsOf: journal.appendingPathComponent(DetectionJournal.name), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        let clusterOnly: Set<String> = ["type", "node", "annotated"]
        #expect(Self.keyPaths(lines[0]) == Self.keyPaths(golden).subtracting(clusterOnly))
        let failedGolden = try JSONDecoder().decode(
            JSONValue.self, from: Data(contentsOf: Self.folder.appendingPathComponent("detection_record_error.json")))
        // The error golden leaves out the run's null classes and imgsz; the error line's other keys are the same.
        #expect(
            Self.keyPaths(lines[1]).subtracting(["run.classes", "run.imgsz"])
                == Self.keyPaths(failedGolden).subtracting(clusterOnly))
    }

    /// `contracts/vocabulary.json`, as written.
    struct Vocabulary: Decodable {
        var backends: [String]
        var trackers: [String]
        var classIDLimit: Int
        var imageSuffixes: [String]
        var sessionStates: [String]
        var finalErrors: [String]

        enum CodingKeys: String, CodingKey {
            case backends, trackers
            case classIDLimit = "class_id_limit"
            case imageSuffixes = "image_suffixes"
            case sessionStates = "session_states"
            case finalErrors = "final_errors"
        }
    }

    @Test(
        "The backends, trackers, class id limit, image suffixes, session states and the errors a resume keeps are the cluster code's"
    )
    func vocabulary() async throws {
        let words = try JSONDecoder().decode(
            Vocabulary.self, from: Data(contentsOf: Self.folder.appendingPathComponent("vocabulary.json")))
        #expect(DetectionDeployment.Backend.allCases.map(\.rawValue) == words.backends)
        #expect(VideoOptions.Tracker.allCases.map(\.rawValue) == words.trackers)
        #expect(DetectionOptions.classIDLimit == words.classIDLimit)
        #expect(DetectionInput.imageExtensions == Set(words.imageSuffixes.map { String($0.dropFirst()) }))
        #expect(ClusterSession.State.all.map(\.rawValue) == words.sessionStates)
        #expect(DetectionRecord.finalErrorCodes.map(\.rawValue) == words.finalErrors)
        #expect(
            ClusterSession.State.all.filter(\.isTerminal).map(\.rawValue) == Array(words.sessionStates.dropFirst(2)))
        // The CLI refuses a class id the cluster would refuse, before anything is sent.
        let tooHigh = try await CommandRunner.raylan(
            ["detect", "a.jpg", "--classes", "0,\(words.classIDLimit)", "--address", "127.0.0.1:9"])
        #expect(tooHigh.status == 64, "\(tooHigh)")
        #expect(tooHigh.stderr.contains("--classes"), "\(tooHigh)")
    }

    /// The two Serve applications as Swift writes them, with a key derived from a token (its salt and verifier in
    /// the config) and the options a user can set.
    static func serveConfigs() -> [String: JSONValue] {
        let key = ServiceKey(value: "rlk1.00112233.secret", source: "golden", salt: "00112233")
        var service = DetectionDeployment(
            model: "models/shapes-yolo11n.pt", name: "shapes", gpusPerReplica: 0.5, replicas: .auto(min: 1, max: 3),
            maxBatch: 16, batchWaitMilliseconds: 5, imageSize: 640)
        service.backend = .tensor
        service.maxReplicasPerNode = 2
        var naive = DetectionDeployment(model: "models/shapes-yolo11n.pt", name: "shapes-naive")
        naive.isNaive = true
        let identity = DetectionDeployment.ModelIdentity(
            id: "sha256:" + String(repeating: "ab", count: 32), backend: "pt")
        let code = "gcs://_ray_pkg_0123456789abcdef.zip"
        return [
            "service_config.json": service.applicationConfig(
                workingDirectoryURI: code, modelArgument: service.model, keyArguments: key.configArguments,
                identity: identity),
            "naive_service_config.json": naive.applicationConfig(
                workingDirectoryURI: code, modelArgument: naive.model, keyArguments: key.configArguments,
                identity: identity),
            "gateway_config.json": GatewayDeployment(maxPutBytes: 1 << 30).applicationConfig(
                workingDirectoryURI: code, keyArguments: key.configArguments),
        ]
    }

    @Test("The Serve applications' configs Swift writes are the golden ones, whose args the cluster's builders take")
    func serveConfigs() throws {
        for (name, made) in Self.serveConfigs().sorted(by: { $0.key < $1.key }) {
            let golden = try JSONDecoder().decode(
                JSONValue.self, from: Data(contentsOf: Self.folder.appendingPathComponent(name)))
            let text = String(decoding: try JSONEncoder().encode(made), as: UTF8.self)
            #expect(made == golden, "\(name): Swift writes \(text)")
        }
    }
}
