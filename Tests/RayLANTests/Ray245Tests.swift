import Foundation
import NIOHTTP1
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests {
    @Suite("Compatibility with Ray 2.45.0 (the seed's version)", .cluster(.ray245))
    struct Ray245Tests {
        @Test("status, job submit with a working directory, and logs")
        func statusSubmitLogs() async throws {
            let cluster = try requireCluster()
            let address = cluster.address.description
            let status = try await CommandRunner.raylan(["status", "--address", address, "--json"])
            #expect(status.status == 0, "\(status)")
            let state = try JSONDecoder().decode(ClusterState.self, from: Data(status.stdout.utf8))
            #expect(state.server.rayVersion == RayVersion(2, 45, 0))
            #expect(state.server.pythonVersion?.hasPrefix("3.") == true)
            #expect(state.nodes.count == 1)
            #expect(state.nodes.first?.isAlive == true)

            let marker = UUID().uuidString
            let directory = try makeDirectory([
                "job.py": "print('compat', open('note.txt').read())\n", "note.txt": marker,
            ])
            defer { try? FileManager.default.removeItem(at: directory) }
            let id = "raylan-245-\(UUID().uuidString.prefix(8))"
            let submitted = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--id", id, "--working-dir", directory.path,
                "--env", "X=1", "--cpus", "1", "--", "python", "job.py",
            ])
            #expect(submitted.status == 0, "\(submitted)")
            #expect(submitted.stdout.contains("compat \(marker)"))

            let logs = try await CommandRunner.raylan(["job", "logs", id, "--address", address])
            #expect(logs.status == 0, "\(logs)")
            #expect(logs.stdout.contains("compat \(marker)"))

            let failed = try await CommandRunner.raylan(["job", "submit", "--address", address, "--", "false"])
            #expect(failed.status == 3, "\(failed)")
            #expect(failed.stderr.contains("FAILED"))
        }

        @Test(
            "The detection service deploys and answers on Ray 2.45 with today's FastAPI, behind its key; a tracked video and a Ray Data dataset on the cluster"
        )
        func detection() async throws {
            let cluster = try requireCluster()
            // The environment holds a FastAPI whose app Serve 2.45 cannot pickle as it is (a threading lock).
            let version = try await CommandRunner.run(
                cluster.environment.python, ["-c", "import fastapi; print(fastapi.__version__)"])
            let parts = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").compactMap
            { Int($0) }
            #expect(parts.count >= 2 && (parts[0] > 0 || parts[1] >= 137), "FastAPI \(version.stdout)")

            let out = try TestEnvironment.makeTemporaryDirectory("raylan-245-detect")
            defer { try? FileManager.default.removeItem(at: out) }
            let detect = try await CommandRunner.raylan(
                [
                    "detect", RayClusterTests.Main.DetectionTests.samples.path, "--address",
                    cluster.address.description,
                    "--out", out.path, "--port", String(cluster.ray.ports.serve), "--gpus-per-replica", "0",
                ], timeout: .seconds(600))
            #expect(detect.status == 0, "\(detect)")
            let records = DetectionJournal.read(out.appendingPathComponent("detections.jsonl"))
            #expect(records.count == 12 && records.allSatisfy(\.succeeded), "\(records.compactMap(\.error))")
            #expect(records.allSatisfy { ($0.result?.detections.count ?? 0) > 0 })
            // Placed to fit the 2-CPU cluster (fractional CPUs per replica) on 2.45 too.
            PlacementTests.expectFitted(
                try await cluster.withConnection { try await $0.serveStatus().applications["shapes-yolo11n"] },
                cpus: 2)
            // A video through the service's replicas (a DeploymentHandle from the session actor) with a tracker, and
            // a dataset read with Ray Data, both on 2.45.
            let (video, truth) = try await VideoFixture.make(in: out, frames: 20)
            let videoOut = out.appendingPathComponent("video")
            let tracked = try await CommandRunner.raylan(
                [
                    "detect", "--on-cluster", video.path, "--vid-stride", "2", "--track", "bytetrack", "--address",
                    cluster.address.description, "--out", videoOut.path, "--no-deploy",
                ], timeout: .seconds(600))
            #expect(tracked.status == 0, "\(tracked)")
            let frames = try String(
                contentsOf: videoOut.appendingPathComponent("detections.jsonl"), encoding: .utf8
            ).split(separator: "\n").map { try JSONDecoder().decode(FrameResult.self, from: Data($0.utf8)) }
            // Every second frame, its shapes found, each detection with a track id that stays with its shape.
            #expect(frames.map(\.frame) == Array(stride(from: 0, to: 20, by: 2)), "\(frames.map(\.frame))")
            let score = VideoFixture.score(frames, against: truth)
            #expect(score.recall >= 0.9 && score.precision >= 0.9, "\(score)")
            #expect(frames.allSatisfy { $0.detections.allSatisfy { $0.trackID != nil } }, "untracked detections")
            #expect(score.switches <= 2, "\(score.switches) id switches")
            try await cluster.withConnection { ray in
                let endpoint = try await ray.serveEndpoint(for: "shapes-yolo11n")
                #expect(try await ray.send(.GET, to: endpoint.anonymous, "/models").status == 401)
                _ = try await ray.deleteServeApplication("shapes-yolo11n")
            }
            // (The service is gone: its replica held one of the cluster's two CPUs.)
            let datasetOut = out.appendingPathComponent("dataset")
            let onCluster = try await CommandRunner.raylan(
                [
                    "detect", "--on-cluster", RayClusterTests.Main.DetectionTests.samples.path, "--address",
                    cluster.address.description, "--out", datasetOut.path, "--cluster-out",
                    out.appendingPathComponent("dataset-on-cluster").path, "--port", String(cluster.ray.ports.serve),
                    "--gpus-per-actor", "0", "--actors", "1",
                ], timeout: .seconds(600))
            #expect(onCluster.status == 0, "\(onCluster)")
            let imageLines = try String(
                contentsOf: datasetOut.appendingPathComponent("detections.jsonl"), encoding: .utf8
            ).split(separator: "\n")
            #expect(imageLines.count == 12 && imageLines.allSatisfy { $0.contains("\"detections\"") })
        }

        @Test("The gateway on Ray 2.45: calls, errors, objects and actors; a GPU call on a CPU-only cluster is refused")
        func gateway() async throws {
            let test = try requireCluster()
            try await test.withConnection { cluster in
                let tasks = try await GatewayFixture.gateway(cluster)
                let sum: Int = try await tasks.call("tasks:add", 1, keywords: ["b": 2])
                #expect(sum == 3)
                let noGPU = await GatewayFixture.gatewayError {
                    let _: Bool = try await tasks.call("tasks:cuda", resources: .gpus(1))
                }
                #expect(noGPU?.code == .infeasible)
                #expect(noGPU?.message.contains("no node has a GPU") == true, "\(String(describing: noGPU))")
                let raised = await GatewayFixture.gatewayError { let _: Int = try await tasks.call("tasks:boom", "x") }
                #expect(raised?.code == .remoteException && raised?.remote?.type == "ValueError")

                let data = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                let ref = try await tasks.put(data)
                #expect(try await tasks.get(ref) == data)
                let digest: GatewayFixture.Digest = try await tasks.call("tasks:digest", ref)
                #expect(digest == .init(size: data.count, sha256: GatewayFixture.sha256(data)))

                let counter = try await tasks.actor("tasks:Counter", 1, resources: .cpus(0))
                let count: Int = try await counter.call("add", 41)
                #expect(count == 42)
                #expect(try await cluster.removeGateway())
            }
        }
    }
}
