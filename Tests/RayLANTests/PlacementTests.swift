import Foundation
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

@Suite("The detection service's placement fitted to the cluster")
struct PlacementTests {
    typealias Placement = DetectionDeployment.Placement

    static func node(cpus: Double, gpus: Double = 0, alive: Bool = true) -> NodeInfo {
        NodeInfo(
            nodeID: UUID().uuidString, ip: "10.0.0.1", hostname: nil, isHead: false, state: alive ? .alive : .dead,
            cpus: .init(used: 0, total: cpus), gpus: .init(used: 0, total: gpus), memory: .init(used: 0, total: 1),
            hostMemory: nil, cpuPercent: nil, customResources: [:], gpuDevices: [])
    }

    @Test(
        "CPUs only: one replica per CPU (at most 4), together holding a quarter of the CPUs; batches of 8",
        arguments: [
            // (CPUs per alive node, replicas, CPUs per replica)
            ([2.0], 2, 0.25),  // the embedded cluster on a 2-core machine: the bench's best, 1.5 CPUs left free
            ([1.0], 1, 0.25),
            ([3.0], 3, 0.25),
            ([16.0], 4, 1.0),
            ([2.0, 2.0], 4, 0.25),  // two nodes count together
            ([12.0], 4, 0.75),
            ([0.5], 1, 0.25),  // never less than a quarter CPU
        ])
    func cpuOnly(nodes: [Double], replicas: Int, cpus: Double) {
        let placement = Placement.fitting(nodes.map { Self.node(cpus: $0) })
        #expect(placement == Placement(replicas: replicas, gpusPerReplica: 0, cpusPerReplica: cpus, maxBatch: 8))
        // Three quarters of the cluster's CPUs stay free for --on-cluster runs and sessions (a quarter CPU each at
        // the least).
        let total = nodes.reduce(0, +)
        #expect(Double(placement.replicas) * placement.cpusPerReplica <= max(total / 4, 0.25))
    }

    @Test("GPUs: one replica per whole GPU (at most 8), 1 GPU and 1 CPU each, batches of 16; dead nodes count nothing")
    func gpus() {
        let twoHosts = [
            Self.node(cpus: 8, gpus: 1), Self.node(cpus: 8, gpus: 1), Self.node(cpus: 64, gpus: 4, alive: false),
        ]
        #expect(
            Placement.fitting(twoHosts)
                == Placement(replicas: 2, gpusPerReplica: 1, cpusPerReplica: 1, maxBatch: 16))
        #expect(Placement.fitting([Self.node(cpus: 64, gpus: 16)]).replicas == 8)
        // Half a GPU each, as asked: two replicas per GPU.
        #expect(
            Placement.fitting([Self.node(cpus: 8, gpus: 1)], gpusPerReplica: 0.5)
                == Placement(replicas: 2, gpusPerReplica: 0.5, cpusPerReplica: 1, maxBatch: 16))
        // --gpus-per-replica 0 on a GPU host: placed on its CPUs.
        #expect(
            Placement.fitting([Self.node(cpus: 8, gpus: 1)], gpusPerReplica: 0)
                == Placement(replicas: 4, gpusPerReplica: 0, cpusPerReplica: 0.5, maxBatch: 8))
        // A fraction of a GPU on a node is not a GPU to place a replica on.
        #expect(Placement.fitting([Self.node(cpus: 2, gpus: 0.5)]).gpusPerReplica == 0)
    }

    @Test("No alive node (a state that could not be read): one replica with 1 CPU")
    func nothingKnown() {
        #expect(
            Placement.fitting([Self.node(cpus: 4, alive: false)])
                == Placement(replicas: 1, gpusPerReplica: 0, cpusPerReplica: 1, maxBatch: 8))
    }

    @Test("A placed deployment carries the placement into Serve's config, and says it")
    func placedConfig() {
        let placement = Placement(replicas: 2, gpusPerReplica: 0, cpusPerReplica: 0.5, maxBatch: 16)
        let deployment = DetectionDeployment(model: "yolo11s.pt").placed(placement)
        let config = deployment.applicationConfig(workingDirectoryURI: "gcs://_ray_pkg_0.zip", modelArgument: "m")
        guard case .array(let deployments) = config["deployments"], let serve = deployments.first else {
            Issue.record("no deployment in \(config)")
            return
        }
        #expect(serve["num_replicas"]?.doubleValue == 2)
        #expect(serve["ray_actor_options"]?["num_cpus"]?.doubleValue == 0.5)
        #expect(serve["ray_actor_options"]?["num_gpus"]?.doubleValue == 0)
        #expect(config["args"]?["max_batch"]?.doubleValue == 16)
        #expect(deployment.placementDescription == "2 replicas × 0.5 CPU, batches up to 16")
        var autoscaled = deployment
        autoscaled.replicas = .auto(min: 1, max: 4)
        autoscaled.gpusPerReplica = 1
        #expect(autoscaled.placementDescription == "1–4 replicas (autoscaling) × 1 GPU + 0.5 CPU, batches up to 16")
    }
}

extension PlacementTests {
    /// A service deployed with no placement option on a CPU-only cluster of `cpus` CPUs, as Serve runs it: more
    /// than one replica where there are 2 CPUs or more (each computes with one thread, so one replica would leave
    /// cores idle), together holding at most a quarter of the CPUs (the rest stays free for `--on-cluster` runs), batches
    /// of 8, and every replica running.
    static func expectFitted(_ application: ServeStatus.Application?, cpus: Double) {
        guard case .array(let deployments) = application?.deployedAppConfig?["deployments"],
            let detector = deployments.first
        else {
            Issue.record("no deployed config: \(String(describing: application))")
            return
        }
        let replicas = detector["num_replicas"]?.doubleValue ?? 0
        let each = detector["ray_actor_options"]?["num_cpus"]?.doubleValue ?? 0
        #expect(cpus < 2 || replicas >= 2, "\(replicas) replicas on \(cpus) CPUs")
        #expect(replicas * each > 0 && replicas * each <= cpus / 4, "\(replicas) × \(each) CPU of \(cpus)")
        #expect(detector["ray_actor_options"]?["num_gpus"]?.doubleValue == 0)
        #expect(application?.deployedAppConfig?["args"]?["max_batch"]?.doubleValue == 8)
        let running = application?.deployments?.values.flatMap { $0.replicas ?? [] }.filter { $0.state == "RUNNING" }
        #expect(running?.count == Int(replicas), "\(String(describing: application?.deployments))")
    }
}
