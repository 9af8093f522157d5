import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests.Main {
    /// The library's detect run (what `raylan detect` runs) against the shared local Ray.
    @Suite("DetectionRun")
    struct DetectionRunTests {
        static let samples = DetectionTests.samples

        /// Events as they arrive, for assertions after the run.
        typealias Recorder = EventRecorder<DetectionEvent>

        static func sampleInputs() -> [DetectionInput] { DetectionInput.expand([samples.path]).inputs }

        @Test("A run answers every input once, reports progress per answer, and writes COCO, YOLO and the report")
        func outputsAndProgress() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let out = try TestEnvironment.makeTemporaryDirectory("raylan-run")
            defer { try? FileManager.default.removeItem(at: out) }
            let run = DetectionRun(
                inputs: [Self.samples.path], output: out, service: .running("shapes-yolo11n"),
                outputs: [.coco, .yolo, .report],
                concurrency: 3, imagesPerRequest: 2)
            let recorder = Recorder()
            let summary = try await cluster.withConnection {
                try await run.run(on: $0, events: { recorder.record($0) })
            }

            let inputs = Self.sampleInputs()
            #expect(inputs.count == 12)
            #expect(summary.inputs == inputs.count && summary.succeeded == inputs.count && summary.failed == 0)
            #expect(summary.skipped == 0)
            // Progress: one start with everything to do, then one event per answer, counting up to the total.
            #expect(recorder.started.map(\.total) == [inputs.count])
            let answered = recorder.answered
            #expect(answered.map(\.1.done) == Array(1...inputs.count))
            #expect(answered.allSatisfy { $0.1.total == inputs.count && $0.1.failed == 0 })
            #expect(Set(answered.map(\.0.path)) == Set(inputs.map(\.path)))
            // The summary ends the events, once, as the run returns it.
            #expect(recorder.finished == [summary])

            // The journal holds exactly those records, in input order.
            let journal = DetectionJournal.read(run.journalURL)
            #expect(journal.map(\.path) == inputs.map(\.path))
            #expect(
                journal
                    == answered.map(\.0).sorted { a, b in
                        inputs.firstIndex { $0.path == a.path }! < inputs.firstIndex { $0.path == b.path }!
                    })

            // COCO: one image per input, one annotation per detection in the journal, boxes as [x, y, w, h].
            struct COCO: Decodable {
                struct Image: Decodable { var id: Int; var file_name: String; var width: Int; var height: Int }
                struct Annotation: Decodable { var image_id: Int; var category_id: Int; var bbox: [Double] }
                var images: [Image]
                var annotations: [Annotation]
            }
            let coco = try JSONDecoder().decode(
                COCO.self, from: Data(contentsOf: out.appendingPathComponent("annotations.json")))
            #expect(coco.images.map(\.file_name) == inputs.map(\.path))
            let detections = journal.flatMap { $0.result?.detections ?? [] }
            #expect(coco.annotations.count == detections.count)
            for (annotation, detection) in zip(coco.annotations, detections) {
                #expect(annotation.category_id == detection.classID)
                #expect(abs(annotation.bbox[2] - (detection.box[2] - detection.box[0])) < 1e-9)
            }

            // YOLO: a label file per input with one row per detection.
            for record in journal {
                let label = out.appendingPathComponent(
                    DetectionExports.outputPath(of: record.path, in: "labels", extension: "txt"))
                let rows = try String(contentsOf: label, encoding: .utf8).split(separator: "\n")
                #expect(rows.count == record.result?.detections.count, "\(label.path)")
            }
            // The report names every input.
            let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
            for input in inputs { #expect(html.contains(input.path)) }
        }

        @Test("A resumed run sends only what the journal lacks, keeps the rest, and writes outputs over all inputs")
        func resume() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let out = try TestEnvironment.makeTemporaryDirectory("raylan-run-resume")
            defer { try? FileManager.default.removeItem(at: out) }
            var run = DetectionRun(
                inputs: [Self.samples.path], output: out, service: .running("shapes-yolo11n"), outputs: [.coco])
            _ = try await cluster.withConnection { try await run.run(on: $0) }
            // An interrupted run: 5 complete lines and a torn sixth.
            let text = try String(contentsOf: run.journalURL, encoding: .utf8)
            let lines = text.split(separator: "\n")
            try Data((lines.prefix(5).joined(separator: "\n") + "\n" + lines[5].prefix(20)).utf8).write(
                to: run.journalURL)
            let kept = DetectionJournal.read(run.journalURL)
            #expect(kept.count == 5)

            run.resume = true
            let recorder = Recorder()
            let summary = try await cluster.withConnection {
                try await run.run(on: $0, events: { recorder.record($0) })
            }
            let inputs = Self.sampleInputs()
            #expect(recorder.started.map(\.skipped) == [5])
            #expect(recorder.started.map(\.total) == [inputs.count - 5])
            let sent = Set(recorder.answered.map(\.0.path))
            #expect(sent == Set(inputs.map(\.path)).subtracting(kept.map(\.path)))
            #expect(summary.inputs == inputs.count && summary.skipped == 5 && summary.succeeded == inputs.count)

            let journal = DetectionJournal.read(run.journalURL)
            #expect(journal.count == inputs.count)
            #expect(Set(journal.map(\.path)) == Set(inputs.map(\.path)))
            #expect(Array(journal.prefix(5)) == kept)
            #expect(
                try String(contentsOf: run.journalURL, encoding: .utf8).split(separator: "\n").count == inputs.count)
            struct COCO: Decodable { struct Image: Decodable { var file_name: String }; var images: [Image] }
            let coco = try JSONDecoder().decode(
                COCO.self, from: Data(contentsOf: out.appendingPathComponent("annotations.json")))
            #expect(coco.images.map(\.file_name) == inputs.map(\.path))
        }

        @Test("An argument that matches no image, or a service that is not running, fails before anything is written")
        func failsBeforeWriting() async throws {
            let cluster = try requireCluster()
            let parent = try TestEnvironment.makeTemporaryDirectory("raylan-run-none")
            defer { try? FileManager.default.removeItem(at: parent) }
            let out = parent.appendingPathComponent("out")
            let nothing = DetectionRun(
                inputs: [Self.samples.path, parent.appendingPathComponent("no-such-*.jpg").path], output: out,
                service: .running("shapes-yolo11n"))
            await #expect {
                _ = try await cluster.withConnection { try await nothing.run(on: $0) }
            } throws: { error in
                (error as? DetectionError)?.code == .noInput && (error as? DetectionError)?.isUsageError == true
            }
            #expect(!FileManager.default.fileExists(atPath: out.path))

            let notRunning = DetectionRun(inputs: [Self.samples.path], output: out, service: .running("never-deployed"))
            await #expect {
                _ = try await cluster.withConnection { try await notRunning.run(on: $0) }
            } throws: { error in
                (error as? ServeError)?.code == .notDeployed
            }
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
    }
}

@Suite("Detection values")
struct DetectionValueTests {
    @Test("Serve endpoints bracket IPv6 hosts and normalise route prefixes")
    func endpoints() throws {
        let v4 = ServeEndpoint(
            address: try ClusterAddress(parsing: "192.168.1.130"), port: 8000, routePrefix: "/raylan/x/")
        // The dashboard's scheme: TLS beyond loopback (one front serves both ports).
        #expect(v4.url("/detect?conf=0.5") == "https://192.168.1.130:8000/raylan/x/detect?conf=0.5")
        let v6 = ServeEndpoint(
            address: try ClusterAddress(parsing: "[fe80::1]:8265"), port: 9000, routePrefix: "raylan/y")
        #expect(v6.url("/models") == "https://[fe80::1]:9000/raylan/y/models")
        #expect(v6.proxy.url("/-/healthz") == "https://[fe80::1]:9000/-/healthz")
        #expect(ServeEndpoint(address: try ClusterAddress(parsing: "h"), routePrefix: "/").baseURL == "https://h:8000")
        #expect(
            ServeEndpoint(address: try ClusterAddress(parsing: "http://h"), routePrefix: "/").baseURL == "http://h:8000"
        )
        let pin = try CertificatePin(parsing: "sha256:" + String(repeating: "ab", count: 32))
        #expect(ServeEndpoint(address: ClusterAddress(host: "127.0.0.1", pin: pin)).address.pin == pin)
    }

    @Test("Error codes encode as the service's strings and decode unknown ones")
    func codes() throws {
        let error = DetectionError(.decodeFailed, "truncated")
        let json = String(decoding: try JSONEncoder().encode(error), as: UTF8.self)
        #expect(json.contains("\"code\":\"decode_failed\""))
        let future = try JSONDecoder().decode(
            DetectionError.self, from: Data(#"{"code":"new_kind","message":"m"}"#.utf8))
        #expect(future.code == DetectionError.Code(rawValue: "new_kind"))
        #expect(future.code != .decodeFailed)
    }

    @Test("A refused connection is told apart by the error's value")
    func refused() async throws {
        try await ClosedPort.with { port in
            let address = try ClusterAddress(parsing: "127.0.0.1:\(port)")
            let failure = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: address) { _ = try await $0.serverInfo() }
            }
            let underlying = try #require(failure?.underlying)
            #expect(failure?.code == .unreachable)
            #expect(ConnectionFailure(underlying) == .refused, "\(underlying)")
        }
    }
}

extension EventRecorder where Event == DetectionEvent {
    var started: [DetectionRun.Progress] {
        events.compactMap { if case .started(let progress) = $0 { progress } else { nil } }
    }
    /// Each record with the progress that followed it.
    var answered: [(DetectionRecord, DetectionRun.Progress)] {
        zip(events, events.dropFirst()).compactMap { event, next in
            guard case .answered(let record) = event, case .progress(let progress) = next else { return nil }
            return (record, progress)
        }
    }
    /// The summaries the run sent (one, last, when it ended as it should).
    var finished: [DetectionSummary] {
        events.compactMap { if case .finished(let summary) = $0 { summary } else { nil } }
    }
}
