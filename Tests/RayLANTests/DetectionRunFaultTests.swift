#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// Creates a file whose name is arbitrary bytes (Linux allows any but `/` and NUL).
func createFile(named bytes: [UInt8], in folder: URL, contents: Data) throws {
    let path = Array(folder.path.utf8) + [UInt8(ascii: "/")] + bytes + [0]
    let descriptor = path.withUnsafeBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY | O_TRUNC, 0o644) }
    }
    try #require(descriptor >= 0)
    _ = contents.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}

@Suite("DetectionRun inputs and output names")
struct DetectionRunInputTests {
    static let samples = RayClusterTests.Main.DetectionTests.samples

    @Test(
        "Output names are distinct for paths that folding used to merge, stay under 255 bytes, and stay readable",
        arguments: [
            ("x.jpg", "x.png"), ("a/b__c.jpg", "a__b/c.jpg"), ("../x/a.jpg", "x/a.jpg"), ("/x/a.jpg", "x/a.jpg"),
            ("a_/b.jpg", "a/_b.jpg"),
            (String(repeating: "n", count: 300) + "1.jpg", String(repeating: "n", count: 300) + "2.jpg"),
            ("a/x.jpg", "b/x.jpg"),
        ])
    func outputNames(_ pair: (String, String)) {
        let first = DetectionExports.outputPath(of: pair.0, in: "labels", extension: "txt")
        let second = DetectionExports.outputPath(of: pair.1, in: "labels", extension: "txt")
        #expect(first != second)
        for name in [first, second] {
            #expect(name.hasPrefix("labels/") && name.hasSuffix(".txt"))
            let file = String(name.dropFirst("labels/".count))
            #expect(file.utf8.count <= 255 && !file.contains("/"), "\(file)")
        }
    }

    @Test("Common paths keep readable output names")
    func readableNames() {
        #expect(
            DetectionExports.outputPath(of: "samples/shapes_00.jpg", in: "labels", extension: "txt")
                == "labels/samples__shapes_00.jpg.txt")
        #expect(DetectionExports.outputPath(of: "./x.png", in: "annotated", extension: "jpg") == "annotated/x.png.jpg")
        #expect(DetectionExports.outputPath(of: "../x/a.jpg", in: "labels", extension: "txt").contains("x__a.jpg___"))
    }

    @Test(
        "One file by two spellings or a symlink is one input; symlinked folders are followed, loops end"
    )
    func sameFileOnce() throws {
        let inputs = DetectionInput.expand([
            Self.samples.path, Self.samples.path + "/.", Self.samples.path + "/../samples",
        ])
        #expect(inputs.unmatched.isEmpty)
        #expect(inputs.inputs.count == 12)
        #expect(inputs.inputs.allSatisfy { $0.path.hasPrefix(Self.samples.path + "/") && !$0.path.contains("/./") })

        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-links")
        defer { try? FileManager.default.removeItem(at: folder) }
        let top = folder.appendingPathComponent("top")
        try FileManager.default.createDirectory(at: top, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: top.appendingPathComponent("linked"), withDestinationURL: Self.samples)
        try FileManager.default.createSymbolicLink(at: top.appendingPathComponent("loop"), withDestinationURL: top)
        let linked = DetectionInput.expand([top.path])
        #expect(linked.unmatched.isEmpty)
        #expect(linked.inputs.count == 12, "\(linked.inputs.map(\.path))")
        #expect(linked.inputs.allSatisfy { $0.path.hasPrefix(top.path + "/linked/") && $0.error == nil })
        // The folder and its link together: still 12, the first spelling kept.
        let both = DetectionInput.expand([Self.samples.path, top.path])
        #expect(both.inputs.count == 12 && both.inputs.allSatisfy { $0.path.hasPrefix(Self.samples.path) })
    }

    @Test("A FIFO, a file of 4 GiB or more and names that are not UTF-8 are inputs with their named errors, never read")
    func specialFiles() throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-special")
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("pipe.jpg")
        try #require(mkfifo(fifo.path, 0o644) == 0)
        let huge = folder.appendingPathComponent("huge.jpg")
        _ = FileManager.default.createFile(atPath: huge.path, contents: nil)
        let handle = try FileHandle(forWritingTo: huge)
        try handle.truncate(atOffset: UInt64(DetectionInput.sizeLimit))  // sparse
        try handle.close()
        let good = try Data(contentsOf: Self.samples.appendingPathComponent("shapes_00.jpg"))
        try good.write(to: folder.appendingPathComponent("good.jpg"))
        try createFile(named: Array("bad".utf8) + [0xFF] + Array(".jpg".utf8), in: folder, contents: good)
        try createFile(named: Array("bad".utf8) + [0xFE] + Array(".jpg".utf8), in: folder, contents: good)

        let expanded = DetectionInput.expand([folder.path, fifo.path])
        #expect(expanded.unmatched.isEmpty)
        let byName = Dictionary(
            expanded.inputs.map { (($0.path as NSString).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(expanded.inputs.count == 5, "\(expanded.inputs.map(\.path))")
        #expect(byName["pipe.jpg"]?.error?.code == .notAFile)
        #expect(byName["huge.jpg"]?.error?.code == .tooLarge)
        #expect(byName["good.jpg"]?.error == nil)
        let bad = expanded.inputs.filter { $0.path.contains("bad") }
        #expect(bad.count == 2 && Set(bad.map(\.path)).count == 2, "\(bad.map(\.path))")
        #expect(bad.allSatisfy { $0.error?.code == .unreadable })
    }
}

extension RayClusterTests.Main {
    /// Faults a detect run survives against the shared local Ray: the right model, resumes keyed by their
    /// settings, retries, distinct outputs, output failures, odd inputs.
    @Suite("DetectionRun faults")
    struct DetectionRunFaultTests {
        static let samples = DetectionTests.samples

        static func copySamples(_ names: [String], to folder: URL) throws {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for name in names {
                try FileManager.default.copyItem(
                    at: samples.appendingPathComponent(name), to: folder.appendingPathComponent(name))
            }
        }

        @Test(
            "Two models with one file stem: the second redeploys and records its hash; --no-deploy refuses"
        )
        func sameStemRedeploys() async throws {
            let cluster = try requireCluster()
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-stem")
            defer { try? FileManager.default.removeItem(at: folder) }
            let a = folder.appendingPathComponent("runs/a/weights/best.pt")
            let b = folder.appendingPathComponent("runs/b/weights/best.onnx")
            for (source, target) in [(DetectionTests.ptModel, a), (DetectionTests.onnxModel, b)] {
                try FileManager.default.createDirectory(
                    at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: URL(fileURLWithPath: source), to: target)
            }
            let image = Self.samples.appendingPathComponent("shapes_00.jpg").path
            let port = cluster.ray.ports.serve
            func run(_ model: URL, out: String) async throws -> (DetectionRecord, [DetectionEvent]) {
                let recorder = DetectionRunTests.Recorder()
                let run = DetectionRun(
                    inputs: [image], output: folder.appendingPathComponent(out),
                    service: .deployIfNeeded(DetectionDeployment(model: model.path, gpusPerReplica: 0), httpPort: port))
                _ = try await cluster.withConnection { try await run.run(on: $0, events: { recorder.record($0) }) }
                return (try #require(DetectionJournal.read(run.journalURL).first), recorder.events)
            }
            func scenario() async throws {
                let identityA = try DetectionDeployment(model: a.path).modelIdentity()
                let identityB = try DetectionDeployment(model: b.path).modelIdentity()
                #expect(identityA.id.hasPrefix("sha256:") && identityA.backend == "pt" && identityB.backend == "onnx")

                let (first, _) = try await run(a, out: "out-a")
                #expect(first.settings?.model == identityA && first.succeeded)
                let (second, events) = try await run(b, out: "out-b")
                #expect(events.contains { if case .deploying = $0 { true } else { false } }, "no redeploy")
                #expect(second.settings?.model == identityB && second.succeeded)
                let status = try await cluster.withConnection { try await $0.serveStatus() }
                #expect(status.applications["best"]?.modelIdentity == identityB)
                // The same model again: reused, no deploy.
                let (_, again) = try await run(b, out: "out-b2")
                #expect(!again.contains { if case .deploying = $0 { true } else { false } })

                let refused = DetectionRun(
                    inputs: [image], output: folder.appendingPathComponent("out-refused"),
                    service: .running("best", model: identityA))
                await #expect {
                    _ = try await cluster.withConnection { try await refused.run(on: $0) }
                } throws: { error in
                    let error = error as? ServeError
                    return error?.code == .modelMismatch && error!.description.contains(identityA.id)
                        && error!.description.contains(identityB.id)
                }
                // A stream with --no-deploy checks the model the same way, before the stream is opened.
                let stream = try await CommandRunner.raylan([
                    "detect", "rtsp://127.0.0.1:1/live", "--no-deploy", "--model", a.path, "--address",
                    cluster.address.description, "--out", folder.appendingPathComponent("out-stream").path,
                ])
                #expect(stream.status == 1, "\(stream)")
                #expect(
                    stream.stderr.contains(identityA.id) && stream.stderr.contains(identityB.id)
                        && !stream.stderr.contains("rtsp"), "\(stream.stderr)")
            }

            do {
                try await scenario()
            } catch {
                _ = try? await cluster.withConnection { try await $0.deleteServeApplication("best") }
                throw error
            }
            _ = try await cluster.withConnection { try await $0.deleteServeApplication("best") }
        }

        @Test(
            "--resume with another --conf is refused naming it (exit 64); --force moves the journal aside"
        )
        func resumeWithOtherSettings() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-resume-conf")
            defer { try? FileManager.default.removeItem(at: folder) }
            try Self.copySamples(
                ["shapes_00.jpg", "shapes_01.jpg", "shapes_02.jpg"], to: folder.appendingPathComponent("in"))
            let out = folder.appendingPathComponent("out")
            let arguments = [
                "detect", folder.appendingPathComponent("in").path, "--address", cluster.address.description,
                "--out", out.path, "--no-deploy",
            ]
            let first = try await CommandRunner.raylan(arguments)
            #expect(first.status == 0, "\(first)")
            let journal = out.appendingPathComponent("detections.jsonl")
            let before = try Data(contentsOf: journal)
            #expect(DetectionJournal.read(journal).allSatisfy { $0.settings?.confidence == 0.25 })

            let refused = try await CommandRunner.raylan(arguments + ["--resume", "--conf", "0.5"])
            #expect(refused.status == 64, "\(refused)")
            #expect(refused.stderr.contains("conf 0.25 → 0.5"), "\(refused.stderr)")
            #expect(try Data(contentsOf: journal) == before)
            // The client's shrink is a setting too: the first run shrank (auto), so sending originals is refused.
            #expect(DetectionJournal.read(journal).allSatisfy { $0.settings?.maxSide == "auto" })
            let unshrunk = try await CommandRunner.raylan(arguments + ["--resume", "--max-side", "off"])
            #expect(unshrunk.status == 64, "\(unshrunk)")
            #expect(unshrunk.stderr.contains("max-side auto → off"), "\(unshrunk.stderr)")
            #expect(try Data(contentsOf: journal) == before)

            let forced = try await CommandRunner.raylan(arguments + ["--resume", "--conf", "0.5", "--force"])
            #expect(forced.status == 0, "\(forced)")
            let records = DetectionJournal.read(journal)
            #expect(records.count == 3 && records.allSatisfy { $0.settings?.confidence == 0.5 })
            #expect(try Data(contentsOf: URL(fileURLWithPath: journal.path + ".1")) == before)
        }

        @Test("A run without --resume moves the previous journal aside; failed items are sent again on resume")
        func retriesOnResume() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-retry")
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in")
            try Self.copySamples(["shapes_00.jpg", "shapes_01.jpg", "shapes_02.jpg"], to: input)
            // A file that cannot be read yet: a link to a file that comes later.
            let later = folder.appendingPathComponent("later.jpg")
            try FileManager.default.createSymbolicLink(
                at: input.appendingPathComponent("late.jpg"), withDestinationURL: later)
            var run = DetectionRun(
                inputs: [input.path], output: folder.appendingPathComponent("out"), service: .running("shapes-yolo11n"))
            let first = try await cluster.withConnection { try await run.run(on: $0) }
            #expect(first.failed == 1 && first.succeeded == 3)
            let lines = DetectionJournal.read(run.journalURL)
            #expect(lines.first { $0.path.hasSuffix("late.jpg") }?.error?.code == .unreadable)

            // Another run without resume: the first journal is kept as detections.jsonl.1.
            _ = try await cluster.withConnection { try await run.run(on: $0) }
            #expect(DetectionJournal.read(URL(fileURLWithPath: run.journalURL.path + ".1")) == lines)

            // The file appears, and a transient failure is recorded for another input: both are sent again.
            try FileManager.default.copyItem(at: Self.samples.appendingPathComponent("shapes_03.jpg"), to: later)
            var edited = DetectionJournal.read(run.journalURL)
            let flaky = try #require(edited.firstIndex { $0.path.hasSuffix("shapes_01.jpg") })
            edited[flaky].result = nil
            edited[flaky].error = DetectionError(.unavailable, "HTTP 503")
            try DetectionJournal.replace(run.journalURL, with: edited)
            run.resume = true
            let recorder = DetectionRunTests.Recorder()
            let resumed = try await cluster.withConnection {
                try await run.run(on: $0, events: { recorder.record($0) })
            }
            #expect(
                Set(recorder.answered.map { ($0.0.path as NSString).lastPathComponent }) == [
                    "late.jpg", "shapes_01.jpg",
                ])
            #expect(resumed.succeeded == 4 && resumed.failed == 0 && resumed.skipped == 2)
            let final = DetectionJournal.read(run.journalURL)
            #expect(final.count == 4 && Set(final.map(\.path)).count == 4 && final.allSatisfy(\.succeeded))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.output.path).filter {
                $0.hasSuffix(".tmp")
            }
            #expect(leftovers.isEmpty)
        }

        @Test(
            "Same names in other folders or extensions get distinct outputs; resumed items get theirs"
        )
        func distinctOutputs() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-names")
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in")
            let sources = [
                "shapes_00.jpg", "shapes_01.jpg", "shapes_02.jpg", "shapes_03.jpg", "shapes_04.jpg", "shapes_05.jpg",
            ]
            let targets = ["d1/same.jpg", "d2/same.jpg", "x.jpg", "x.png", "a/b__c.jpg", "a__b/c.jpg"]
            for (source, target) in zip(sources, targets) {
                let url = input.appendingPathComponent(target)
                try FileManager.default.createDirectory(
                    at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: Self.samples.appendingPathComponent(source), to: url)
            }
            let out = folder.appendingPathComponent("out")
            var run = DetectionRun(
                inputs: [input.path], output: out, service: .running("shapes-yolo11n"), outputs: [.annotated, .yolo])
            let summary = try await cluster.withConnection { try await run.run(on: $0) }
            #expect(summary.succeeded == 6)
            for kind in ["annotated", "labels"] {
                let files = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent(kind).path)
                #expect(files.count == 6, "\(kind): \(files)")
            }
            // Each label file holds its own image's detections.
            for record in DetectionJournal.read(run.journalURL) {
                let label = out.appendingPathComponent(
                    DetectionExports.outputPath(of: record.path, in: "labels", extension: "txt"))
                let rows = try String(contentsOf: label, encoding: .utf8).split(separator: "\n")
                #expect(rows.count == record.result?.detections.count)
            }
            // Outputs lost after the run: resuming writes the labels from the journal and asks again for the image.
            try FileManager.default.removeItem(at: out.appendingPathComponent("labels"))
            let annotated = out.appendingPathComponent(
                DetectionExports.outputPath(
                    of: input.appendingPathComponent("x.png").path, in: "annotated", extension: "jpg"))
            try FileManager.default.removeItem(at: annotated)
            run.resume = true
            let recorder = DetectionRunTests.Recorder()
            _ = try await cluster.withConnection { try await run.run(on: $0, events: { recorder.record($0) }) }
            #expect(recorder.answered.map { ($0.0.path as NSString).lastPathComponent } == ["x.png"])
            #expect(FileManager.default.fileExists(atPath: annotated.path))
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("labels").path).count
                    == 6)
            #expect(DetectionJournal.read(run.journalURL).count == 6)
        }

        @Test("An output that cannot be written is that input's output_failed; the others are written")
        func outputFailure() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-outfail")
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in")
            try Self.copySamples(["shapes_00.jpg", "shapes_01.jpg", "shapes_02.jpg"], to: input)
            let out = folder.appendingPathComponent("out")
            let blocked = input.appendingPathComponent("shapes_01.jpg").path
            // A folder where that input's label file would go.
            try FileManager.default.createDirectory(
                at: out.appendingPathComponent(
                    DetectionExports.outputPath(of: blocked, in: "labels", extension: "txt")),
                withIntermediateDirectories: true)
            let run = DetectionRun(
                inputs: [input.path], output: out, service: .running("shapes-yolo11n"), outputs: [.yolo])
            let summary = try await cluster.withConnection { try await run.run(on: $0) }
            #expect(summary.inputs == 3 && summary.succeeded == 2 && summary.failed == 1)
            let records = DetectionJournal.read(run.journalURL)
            let failed = try #require(records.first { $0.path == blocked })
            #expect(failed.error?.code == .outputFailed, "\(failed)")
            #expect(failed.error?.message.contains("labels/") == true)
            #expect(records.filter(\.succeeded).count == 2)
        }

        @Test(
            "A FIFO and a symlink loop among the inputs: the FIFO is named, the loop followed once, the run completes")
        func oddInputs() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-odd")
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in")
            try Self.copySamples(["shapes_00.jpg", "shapes_01.jpg"], to: input)
            try #require(mkfifo(input.appendingPathComponent("pipe.jpg").path, 0o644) == 0)
            try FileManager.default.createSymbolicLink(
                at: input.appendingPathComponent("loop"), withDestinationURL: input)
            let run = DetectionRun(
                inputs: [input.path], output: folder.appendingPathComponent("out"), service: .running("shapes-yolo11n"))
            let summary = try await cluster.withConnection { try await run.run(on: $0) }
            #expect(summary.inputs == 3 && summary.succeeded == 2 && summary.failed == 1)
            let records = DetectionJournal.read(run.journalURL)
            #expect(records.count == 3)
            #expect(records.first { $0.path.hasSuffix("pipe.jpg") }?.error?.code == .notAFile)
        }
    }
}
