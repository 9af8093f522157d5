import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection

/// `DetectionRun`'s sources: what a run of images on the cluster or of a video hands to the run that does the work,
/// and the settings it refuses for a source before anything reaches the cluster. (The runs themselves, against Ray,
/// are `OnClusterDatasetTests`, `VideoTests` and the CLI's tests: `raylan detect` runs every source through here.)
@Suite("One detection run, every source")
struct DetectionSourceTests {
    static let deployment = DetectionDeployment(model: "yolo11n.pt", gpusPerReplica: 0)
    static let options = DetectionOptions(confidence: 0.4, iou: 0.5, classes: [2, 0])
    static let output = URL(fileURLWithPath: "/tmp/raylan-source-out")

    @Test("Images on the cluster: the paths, the source's settings and the run's own reach the dataset run")
    func onCluster() throws {
        let settings = ClusterDatasetRun.Settings(
            batchSize: 4, actors: 3, gpusPerActor: 0.5, cpusPerActor: 0.75, lease: .seconds(30), download: false)
        let run = DetectionRun(
            source: .onCluster(["/data/a", "/data/b"], settings), output: Self.output,
            service: .deployIfNeeded(Self.deployment, httpPort: 8123), options: Self.options,
            outputs: [.coco, .annotated], resume: true, clusterOutput: "/srv/out")
        guard case .onCluster(let paths, let given) = run.source else {
            Issue.record("\(run.source)")
            return
        }
        let dataset = try run.datasetRun(paths, given)
        #expect(dataset.paths == ["/data/a", "/data/b"] && dataset.deployment == Self.deployment)
        #expect(dataset.settings == settings && dataset.httpPort == 8123)
        #expect(dataset.options == Self.options && dataset.annotate && dataset.resume)
        #expect(dataset.exports == [.coco, .annotated] && dataset.clusterOutput == "/srv/out")
        #expect(dataset.output == Self.output)
        // A run of files has no such source.
        #expect(run.inputs == [])
    }

    @Test("Images on the cluster need the service's deployment, not a running application's name")
    func onClusterNeedsDeployment() throws {
        let run = DetectionRun(
            source: .onCluster(["/data/a"]), output: Self.output, service: .running("shapes"))
        let error = try #require(throws: OnClusterError.self) { try run.datasetRun(["/data/a"], .init()) }
        #expect(error.code == .invalidSource, "\(error)")
    }

    @Test(
        "A video: the run's options, annotate and report, its key and folders reach the video run; its own settings stay"
    )
    func video() throws {
        var videoOptions = VideoOptions(stride: 3, tracker: .bytetrack, batch: 16)
        videoOptions.previewFPS = 5
        let key = ServiceKey(value: String(repeating: "k", count: 43), source: "the test")
        let run = DetectionRun(
            source: .video(.stream("rtsp://cam/live"), videoOptions), output: Self.output,
            service: .running("shapes"), options: Self.options, outputs: [.annotated, .report], key: key,
            clusterOutput: "/srv/cam")
        let video = try run.videoRun(.stream("rtsp://cam/live"), videoOptions)
        #expect(video.source == .stream("rtsp://cam/live") && video.service == .running("shapes"))
        #expect(video.options.detection == Self.options && video.options.annotate && video.options.report)
        #expect(video.options.stride == 3 && video.options.tracker == .bytetrack && video.options.batch == 16)
        #expect(video.options.previewFPS == 5)
        #expect(video.key == key && video.output == Self.output && video.clusterOutput == "/srv/cam")
    }

    @Test("A video refuses resume (invalid_source, naming what to do); COCO and YOLO reach its run, the rest stay")
    func videoRefusals() throws {
        var run = DetectionRun(source: .video(.stream("rtsp://cam/live")), output: Self.output, service: .running("s"))
        run.resume = true
        let resume = try #require(throws: OnClusterError.self) { try run.videoRun(.stream("rtsp://cam/live"), .init()) }
        #expect(resume.code == .invalidSource && resume.description.contains("resume"), "\(resume)")
        run.resume = false
        run.outputs = [.coco, .yolo, .annotated, .report]
        let video = try run.videoRun(.stream("rtsp://cam/live"), .init())
        #expect(video.exports == [.coco, .yolo] && video.options.annotate && video.options.report)
        run.outputs = [.annotated]
        #expect(try run.videoRun(.stream("rtsp://cam/live"), .init()).exports == [])
    }

    @Test(
        "A video's COCO and YOLO files: a frame per image named as ffmpeg extracts it, at the source's size, with its track ids; a failed frame left out"
    )
    func videoExports() throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-video-exports")
        defer { try? FileManager.default.removeItem(at: folder) }
        // Frames 0, 3 and 6 of a stride of 3: two boxes (one tracked), none, and a frame the model failed on.
        let lines = [
            #"{"type":"frame","frame":0,"time":0.0,"detections":[{"box":[16,12,48,36],"score":0.9,"class_id":1,"class_name":"square","track_id":7},{"box":[0,0,8,8],"score":0.5,"class_id":0,"class_name":"circle","track_id":null}]}"#,
            #"{"type":"frame","frame":3,"time":0.1,"detections":[]}"#,
            #"{"type":"frame","frame":6,"time":0.2,"error":{"code":"detection_failed","message":"x"}}"#,
        ]
        let journal = try DetectionJournal.new(in: folder)
        for line in lines { try journal.append(line: line) }
        var run = VideoRun(source: .stream("rtsp://cam/live"), service: .running("shapes"), output: folder)
        let summary = try JSONDecoder().decode(
            VideoSummary.self,
            from: Data(
                #"{"frames_read":7,"frames_processed":3,"frames_dropped":0,"seconds":1,"fps":3,"width":64,"height":48}"#
                    .utf8))
        #expect(try run.writeExports(into: folder, summary: summary) == [])
        run.exports = [.coco, .yolo]
        let written = try run.writeExports(into: folder, summary: summary)
        #expect(written.map(\.lastPathComponent) == ["annotations.json", "labels"])
        let coco = try JSONDecoder().decode(
            JSONValue.self, from: Data(contentsOf: folder.appendingPathComponent("annotations.json")))
        guard case .array(let images) = coco["images"], case .array(let annotations) = coco["annotations"] else {
            Issue.record("\(coco)")
            return
        }
        #expect(images.compactMap { $0["file_name"]?.stringValue } == ["frame_000000.jpg", "frame_000003.jpg"])
        #expect(images.allSatisfy { $0["width"] == .number(64) && $0["height"] == .number(48) })
        #expect(annotations.map { $0["track_id"] } == [.number(7), nil])
        #expect(annotations.first?["bbox"] == .array([.number(16), .number(12), .number(32), .number(24)]))
        let labels = folder.appendingPathComponent("labels")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: labels.path).sorted() == [
                "frame_000000.txt", "frame_000003.txt",
            ])
        let first = try String(contentsOf: labels.appendingPathComponent("frame_000000.txt"), encoding: .utf8)
        #expect(first.split(separator: "\n").first == "1 0.500000 0.500000 0.500000 0.500000", "\(first)")
        #expect(try Data(contentsOf: labels.appendingPathComponent("frame_000003.txt")).isEmpty)
        #expect(VideoRun.frameFileName(1_234_567) == "frame_1234567.jpg")
    }

    @Test("Setting a run's inputs makes it a run of files; the files' init is one")
    func files() {
        var run = DetectionRun(source: .video(.stream("rtsp://cam/live")), output: Self.output, service: .running("s"))
        #expect(run.inputs == [])
        run.inputs = ["a.jpg", "photos/"]
        #expect(run.source == .files(["a.jpg", "photos/"]))
        let files = DetectionRun(inputs: ["b.jpg"], output: Self.output, service: .running("s"))
        #expect(files.source == .files(["b.jpg"]) && files.inputs == ["b.jpg"])
    }
}

extension RayClusterTests.Main.DetectionRunTests {
    @Test("prepare() of a run of files finds the running service without deploying; a name Serve lacks is refused")
    func prepareFiles() async throws {
        let cluster = try requireCluster()
        try await RayClusterTests.Main.DetectionTests.deployBoth(cluster)
        let out = URL(fileURLWithPath: "/nonexistent/raylan-prepare")
        let recorder = Recorder()
        let running = DetectionRun(inputs: ["x.jpg"], output: out, service: .running("shapes-yolo11n"))
        try await cluster.withConnection { try await running.prepare(on: $0, events: { recorder.record($0) }) }
        #expect(!recorder.events.contains { if case .deploying = $0 { true } else { false } }, "\(recorder.events)")
        let missing = DetectionRun(inputs: ["x.jpg"], output: out, service: .running("raylan-no-such-service"))
        let error = try await #require(throws: ServeError.self) {
            try await cluster.withConnection { try await missing.prepare(on: $0) }
        }
        #expect(error.code == .notDeployed, "\(error)")
        // Nothing was written: prepare only looks at (or deploys) what the run leans on.
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
