import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests.Main {
    /// Faults and load against the real service: nothing lost, nothing answered twice. The figures these
    /// tests print are recorded in docs/reliability.md.
    @Suite("Reliability under faults and load")
    struct ReliabilityTests {
        /// `count` distinct image files (copies of the samples, so each is its own input) in a new folder.
        static func images(_ count: Int) throws -> URL {
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-load")
            let samples = try FileManager.default.contentsOfDirectory(atPath: DetectionTests.samples.path)
                .filter { $0.hasSuffix(".jpg") }.sorted()
            for index in 0..<count {
                let source = DetectionTests.samples.appendingPathComponent(samples[index % samples.count])
                try FileManager.default.copyItem(
                    at: source, to: folder.appendingPathComponent(String(format: "image_%04d.jpg", index)))
            }
            return folder
        }

        /// The journal's lines: every input exactly once, and how many succeeded.
        static func check(journal url: URL, inputs: Int, sourceLocation: SourceLocation = #_sourceLocation) throws
            -> [DetectionRecord]
        {
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            let records = DetectionJournal.read(url)
            #expect(lines.count == inputs, "lines", sourceLocation: sourceLocation)
            #expect(records.count == inputs, "records", sourceLocation: sourceLocation)
            #expect(Set(records.map(\.path)).count == inputs, "duplicates", sourceLocation: sourceLocation)
            return records
        }

        static func percentile(_ values: [Double], _ share: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * share).rounded(.up)) - 1)]
        }

        @Test("8 concurrent 'raylan detect' runs of 200 images each: every input answered exactly once in each journal")
        func concurrentClients() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try Self.images(200)
            defer { try? FileManager.default.removeItem(at: folder) }
            let clock = ContinuousClock()
            let started = clock.now
            let runs = try (0..<8).map { index in
                try RunningCommand(raylan: [
                    "detect", folder.path, "--address", cluster.address.description, "--no-deploy", "--json",
                    "--out", folder.appendingPathComponent("out-\(index)").path,
                ])
            }
            var results: [CommandResult] = []
            for run in runs { results.append(await run.wait(timeout: .seconds(900))) }
            let seconds = (clock.now - started).seconds
            var serverTotals: [Double] = []
            for (index, result) in results.enumerated() {
                #expect(result.status == 0, "run \(index): \(result)")
                let records = try Self.check(
                    journal: folder.appendingPathComponent("out-\(index)/detections.jsonl"), inputs: 200)
                #expect(records.filter { !$0.succeeded }.isEmpty, "run \(index): \(records.compactMap(\.error))")
                serverTotals += records.compactMap { $0.result?.timingsMs["total"] }
            }
            print(
                String(
                    format:
                        "LOAD 8 clients x 200 images: %.1f s, %.1f images/s; server time per image p50 %.0f ms, p99 %.0f ms",
                    seconds, 1600 / seconds, Self.percentile(serverTotals, 0.5), Self.percentile(serverTotals, 0.99)))
        }

        @Test("A replica SIGKILLed mid-run: every input ends answered, at most after one --resume")
        func replicaKilled() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try Self.images(300)
            defer { try? FileManager.default.removeItem(at: folder) }
            let out = folder.appendingPathComponent("out")
            let journal = out.appendingPathComponent("detections.jsonl")
            let arguments = [
                "detect", folder.path, "--address", cluster.address.description, "--no-deploy", "--out", out.path,
                "--concurrency", "2",
            ]
            let run = try RunningCommand(raylan: arguments)
            let started = await eventually(timeout: .seconds(120)) { DetectionJournal.read(journal).count >= 20 }
            #expect(started, "the run did not get going")
            let replicaPIDs = {
                try await cluster.withConnection { ray in
                    try await ray.serveStatus().applications["shapes-yolo11n"]?.deployments?.values
                        .flatMap { $0.replicas ?? [] }.compactMap(\.pid) ?? []
                }
            }
            let replicas = try await replicaPIDs()
            try #require(!replicas.isEmpty, "no replica pid")
            for pid in replicas { kill(pid_t(pid), SIGKILL) }
            // The kill landed mid-run: right after it, the journal still lacks inputs.
            let answeredAtKill = DetectionJournal.read(journal).count
            #expect(answeredAtKill < 300, "the run had ended before the kill")
            let first = await run.wait(timeout: .seconds(900))
            let firstRecords = try Self.check(journal: journal, inputs: 300)
            let failedFirst = firstRecords.filter { !$0.succeeded }.count
            print(
                "KILL replica \(replicas) at \(answeredAtKill) of 300 answered: first run exit \(first.status), "
                    + "\(failedFirst) of 300 failed")
            #expect(first.status == (failedFirst > 0 ? 5 : 0), "\(first)")
            // Serve replaced the replica: another process serves now.
            _ = try await cluster.withConnection { try await $0.waitUntilRunning("shapes-yolo11n") }
            let replaced = try await replicaPIDs()
            #expect(!replaced.isEmpty && Set(replaced).isDisjoint(with: replicas), "replicas now \(replaced)")
            // One resume answers whatever failed, and keeps every line the first run answered as it was.
            let resumed = try await CommandRunner.raylan(arguments + ["--resume"], timeout: .seconds(900))
            #expect(resumed.status == 0, "\(resumed)")
            let records = try Self.check(journal: journal, inputs: 300)
            #expect(records.filter { !$0.succeeded }.isEmpty, "\(records.compactMap(\.error))")
            let answeredFirst = Set(firstRecords.filter(\.succeeded))
            #expect(records.filter { answeredFirst.contains($0) }.count == answeredFirst.count, "answers were re-sent")
        }

        @Test("Ctrl-C mid-run, then --resume: exactly one line per input; --resume with another --conf is refused")
        func interruptAndResume() async throws {
            let cluster = try requireCluster()
            try await DetectionTests.deployBoth(cluster)
            let folder = try Self.images(120)
            defer { try? FileManager.default.removeItem(at: folder) }
            let out = folder.appendingPathComponent("out")
            let journal = out.appendingPathComponent("detections.jsonl")
            let arguments = [
                "detect", folder.path, "--address", cluster.address.description, "--no-deploy", "--out", out.path,
                "--concurrency", "1", "--images-per-request", "2",
            ]
            let run = try RunningCommand(raylan: arguments)
            let going = await eventually(timeout: .seconds(120)) { DetectionJournal.read(journal).count >= 10 }
            #expect(going)
            run.interrupt()
            let stopped = await run.wait(timeout: .seconds(60))
            #expect(stopped.status != 0, "\(stopped)")
            let partial = DetectionJournal.read(journal).count
            #expect(partial < 120, "the run finished before Ctrl-C")

            let changed = try await CommandRunner.raylan(arguments + ["--resume", "--conf", "0.5"])
            #expect(changed.status == 64, "\(changed)")
            #expect(changed.stderr.contains("conf"), "\(changed.stderr)")
            #expect(DetectionJournal.read(journal).count == partial, "a refused resume changed the journal")

            let resumed = try await CommandRunner.raylan(arguments + ["--resume"])
            #expect(resumed.status == 0, "\(resumed)")
            let records = try Self.check(journal: journal, inputs: 120)
            #expect(records.filter { !$0.succeeded }.isEmpty)
        }
    }
}
