import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

extension RayClusterTests.Main {
    @Suite("raylan bench")
    struct BenchTests {
        @Test("One short run measures all five figures with their ratios and writes the same as JSON")
        func shortRun() async throws {
            let cluster = try requireCluster()
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-bench")
            defer { try? FileManager.default.removeItem(at: folder) }
            let json = folder.appendingPathComponent("bench.json")
            let result = try await CommandRunner.raylan([
                "bench", "--address", cluster.address.description, "--duration", "2", "--concurrency", "1,4", "--images-per-request", "1,4",
                "--seed-images", "2", "--gpus-per-replica", "0", "--port", String(cluster.ray.ports.serve), "--json", json.path,
            ], timeout: .seconds(900))
            #expect(result.status == 0, "\(result)")
            for row in ["(1) RayLAN end to end, 1 in flight", "(1) RayLAN end to end, 4 in flight", "(1) RayLAN end to end, 4 in flight × 4", "(2) model only",
                        "(3) Ultralytics predict loop", "(4) seed's pattern", "(5) naive Ray Serve", "LAN bound", "client RSS"] {
                #expect(result.stdout.contains(row), "missing \(row)")
            }
            let report = try JSONDecoder().decode(BenchmarkReport.self, from: Data(contentsOf: json))
            #expect(report.endToEnd.map { [$0.concurrency, $0.imagesPerRequest] } == [[1, 1], [4, 1], [1, 4], [4, 4]])
            // A multi-image request's images share a dynamic batch.
            #expect((report.endToEnd.last?.largestBatch ?? 0) > 1)
            #expect(report.endToEnd.allSatisfy { $0.images > 0 && $0.failures == 0 })
            #expect((report.modelOnly?.imagesPerSecond ?? 0) > 0)
            #expect((report.ultralyticsLoop?.imagesPerSecond ?? 0) > 0)
            #expect((report.seedPattern?.imagesPerSecond ?? 0) > 0)
            #expect((report.naiveServe?.imagesPerSecond ?? 0) > 0)
            #expect(report.imageSize == 320)
            #expect(report.stageSplitMs["inference"] != nil && report.stageSplitMs["transport"] != nil)
            let best = try #require(report.bestEndToEnd)
            #expect(abs((report.ultralyticsLoop?.ratioToRayLAN ?? 0) - (report.ultralyticsLoop?.imagesPerSecond ?? 0) / best.imagesPerSecond) < 1e-9)
            // The naive application is removed afterwards; the batched service keeps running.
            let apps = try await cluster.withConnection { try await $0.serveStatus().applications }
            #expect(apps["shapes-yolo11n-naive"] == nil)
            #expect(apps["shapes-yolo11n"]?.status == .running)
        }
    }
}
