import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
@testable import RayLANBench

extension RayClusterTests.Main {
    @Suite("raylan bench")
    struct BenchTests {
        @Test("One short run measures the six figures, the variants, the backend and the shrink, and writes JSON")
        func shortRun() async throws {
            let cluster = try requireCluster()
            let folder = try TestEnvironment.makeTemporaryDirectory("raylan-bench")
            defer { try? FileManager.default.removeItem(at: folder) }
            let json = folder.appendingPathComponent("bench.json")
            let result = try await CommandRunner.raylan(
                [
                    "bench", "--address", cluster.address.description, "--duration", "2", "--concurrency", "1,8",
                    "--images-per-request", "1,8", "--replicas", "1", "--max-batch", "8",
                    "--seed-images", "2", "--gpus-per-replica", "0", "--port", String(cluster.ray.ports.serve),
                    "--sweep-max-batch", "4,8", "--on-cluster-dir", folder.path, "--on-cluster-images", "36",
                    "--json", json.path,
                ], timeout: .seconds(900))
            #expect(result.status == 0, "\(result)")
            for row in [
                "(1) RayLAN end to end, 1 in flight", "(1) RayLAN end to end, 8 in flight",
                "(1) RayLAN end to end, 8 in flight × 8", "(2) model only",
                "raylan detect's defaults (8 in flight × 8 images, replicas 1 × 0.25 CPU, batch 8): ",
                "(3) Ultralytics predict loop", "(4) seed's pattern", "(5) naive Ray Serve", "LAN bound", "client RSS",
                "(1) at its best level, ultralytics backend", "(1) at its best level, original files",
                "(1) at its best level, over TLS",
                "backend: tensor", "client shrink to 320 px", "(1) at its best level, 1 replica × batch 4",
                "best replicas × batch: 1 replica × batch", "(6) the same 36 images: on the cluster (Ray Data)",
            ] {
                #expect(result.stdout.contains(row), "missing \(row)")
            }
            let report = try JSONDecoder().decode(BenchmarkReport.self, from: Data(contentsOf: json))
            #expect(
                report.endToEnd.map { [$0.concurrency, $0.imagesPerRequest] } == [[1, 1], [8, 1], [1, 8], [8, 8]])
            // raylan detect's own setting (8 requests in flight of 8 images) against Ultralytics' loop.
            let detectDefaults = try #require(report.detectDefaults)
            #expect(detectDefaults == report.endToEnd.last)
            let loop = try #require(report.ultralyticsLoop?.imagesPerSecond)
            let ratio = try #require(report.detectDefaultsVsUltralytics)
            #expect(abs(ratio - detectDefaults.imagesPerSecond / loop) <= 1e-12 * ratio)
            // A multi-image request's images share a dynamic batch.
            #expect((report.endToEnd.last?.largestBatch ?? 0) > 1)
            #expect(report.endToEnd.allSatisfy { $0.images > 0 && $0.failures == 0 })
            #expect((report.modelOnly?.imagesPerSecond ?? 0) > 0)
            #expect((report.ultralyticsLoop?.imagesPerSecond ?? 0) > 0)
            #expect((report.seedPattern?.imagesPerSecond ?? 0) > 0)
            #expect((report.naiveServe?.imagesPerSecond ?? 0) > 0)
            #expect(report.imageSize == 320)
            // (6): the same 36 images detected on the cluster and streamed, each rate over its own run.
            let onCluster = try #require(report.onCluster)
            #expect(onCluster.images == 36 && onCluster.skipped == nil, "\(onCluster)")
            #expect((onCluster.onClusterImagesPerSecond ?? 0) > 0 && onCluster.streamedImagesPerSecond > 0)
            #expect(onCluster.nodes?.values.reduce(0, +) == 36, "\(onCluster)")
            let startup = try #require(onCluster.onClusterStartupSeconds, "\(onCluster)")
            #expect(startup > 0 && startup < (onCluster.onClusterSeconds ?? 0), "\(onCluster)")
            #expect(
                (try? FileManager.default.contentsOfDirectory(atPath: folder.path).filter {
                    $0.hasPrefix("raylan-bench-")
                })
                    == [], "the bench left its copies")
            #expect(report.stageSplitMs["inference"] != nil && report.stageSplitMs["transport"] != nil)
            // The best level is the fastest of the levels measured.
            let best = try #require(report.bestEndToEnd)
            let fastest = try #require(report.endToEnd.map(\.imagesPerSecond).max())
            #expect(best.imagesPerSecond == fastest)
            #expect(report.endToEnd.contains(best), "\(best) is not one of the levels")
            // Every ratio is its figure over the best rate (within float rounding).
            func matches(_ ratio: Double?, _ value: Double?) -> Bool {
                guard let ratio, let value else { return false }
                return abs(ratio - value / best.imagesPerSecond) <= 1e-12 * max(abs(ratio), 1)
            }
            for (name, reference) in [
                ("model only", report.modelOnly), ("Ultralytics", report.ultralyticsLoop), ("seed", report.seedPattern),
            ] {
                #expect(
                    matches(reference?.ratioToRayLAN, reference?.imagesPerSecond),
                    "\(name): \(String(describing: reference))")
            }
            #expect(matches(report.naiveServeRatio, report.naiveServe?.imagesPerSecond))
            // Each level's rate is its images over the seconds it ran, which are at least the 2 s asked for; a
            // level of n images per request answers whole requests.
            for level in report.endToEnd + [report.naiveServe].compactMap({ $0 }) {
                #expect(level.seconds >= 2, "\(level)")
                let rate = Double(level.images) / level.seconds
                #expect(abs(level.imagesPerSecond - rate) <= 1e-12 * rate, "\(level)")
                #expect(level.images % level.imagesPerRequest == 0, "\(level)")
            }
            // The shipped model runs on the tensor backend (it matches Ultralytics at start-up); the client shrank
            // the samples (600×600 to 1280×720) to the model's 320 and the boxes still agree.
            #expect(report.backend == "tensor", "\(String(describing: report.backendReason))")
            let shrink = try #require(report.shrink)
            #expect(shrink.maxSide == 320)
            #expect(shrink.sentBytesPerImage * 2 < shrink.originalBytesPerImage, "\(shrink)")
            #expect(shrink.agreement.reference >= 38 && shrink.agreement.share >= 0.9, "\(shrink.agreement)")
            let variants = try #require(report.variants)
            // The sweep measured 1 replica × batch 4 (1 × 8 is the service's own) and named the faster setting.
            // Over plain HTTP (the run itself) and over TLS (through a TLS front in the benchmark's process).
            #expect(variants.count == 5, "\(variants.map(\.what))")
            #expect(
                variants.map(\.what).prefix(3) == [
                    "original files (no client shrink)", "ultralytics backend",
                    "over TLS (a TLS front in this process, pinned)",
                ]
                    && variants.last?.what == "1 replica × batch 4", "\(variants.map(\.what))")
            #expect(variants[2].level.failures == 0)
            // The best level again while anonymous requests (no key) hit the service: refused 401 (or shed with 503
            // by the replica's queue: this cluster has no proxy guard), none served.
            let flood = variants[3].what
            let numbers = flood.split { !$0.isNumber }.compactMap { Int($0) }
            #expect(
                flood.hasPrefix("alongside") && numbers.count == 5 && numbers[0] > 0 && numbers[2] > 0
                    && numbers[4] == 0, "\(flood)")
            let fasterSetting =
                variants[4].level.imagesPerSecond > best.imagesPerSecond ? "1 replica × batch 4" : "1 replica × batch 8"
            #expect(report.bestSetting?.hasPrefix(fasterSetting) == true, "\(String(describing: report.bestSetting))")
            for variant in variants {
                #expect(variant.level.concurrency == best.concurrency && variant.level.images > 0, "\(variant)")
                #expect(matches(variant.ratioToRayLAN, variant.level.imagesPerSecond), "\(variant)")
            }
            // The extra applications are removed afterwards; the batched service keeps running.
            let apps = try await cluster.withConnection { try await $0.serveStatus().applications }
            #expect(apps["shapes-yolo11n-naive"] == nil && apps["shapes-yolo11n-ultralytics"] == nil)
            #expect(apps["shapes-yolo11n"]?.status == .running)
            // … with its own setting again after the sweep.
            #expect(apps["shapes-yolo11n"]?.deployedAppConfig?["args"]?["max_batch"]?.doubleValue == 8)
        }
    }
}
