// The seed's two Ray examples from Swift, through RayLAN's gateway (no Python on this machine):
// `gpu_task` (True on a GPU host) and YOLO done right (an actor that loads the model once, called per image
// with put refs). Run it from the checkout: `swift run gateway-example [ADDRESS]` (no address: the embedded
// local Ray, started when needed).
import Foundation
import RayLAN

struct Box: Decodable {
    var box: [Double]
    var score: Double
    var class_name: String
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let code = root.appendingPathComponent("examples/gateway/python")

func run(_ cluster: RayCluster) async throws {
    let tasks = try await cluster.gateway(workingDirectory: code)
    let hasGPU = await cluster.defaultPlacement().gpusPerReplica > 0
    let gpus: ResourceRequest = hasGPU ? .gpus(1) : ResourceRequest()

    // 1. The seed's gpu_task, on a node with a GPU where the cluster has one.
    let onGPU: Bool = try await tasks.call("gpu:gpu_task", resources: gpus)
    print("gpu_task:", onGPU)

    // 2. YOLO done right: the model is put once and loaded once, by an actor; each image is put once.
    let weights = try await tasks.put(Data(contentsOf: root.appendingPathComponent("models/shapes/shapes-yolo11n.pt")))
    let detector = try await tasks.actor("yolo:Detector", weights, resources: gpus)
    let samples = root.appendingPathComponent("samples")
    for name in try FileManager.default.contentsOfDirectory(atPath: samples.path).sorted()
    where name.hasSuffix(".jpg") {
        let image = try await tasks.put(Data(contentsOf: samples.appendingPathComponent(name)))
        let boxes: [Box] = try await detector.call("detect", image)
        print(name, boxes.count, "boxes:", boxes.map(\.class_name).joined(separator: ", "))
        try await tasks.free(image)
    }
    try await detector.kill()
    try await tasks.free(weights)
}

if let address = CommandLine.arguments.dropFirst().first {
    try await RayCluster.withConnection(to: try ClusterAddress(parsing: address)) { try await run($0) }
} else {
    let embedded = EmbeddedCluster.fromEnvironment()
    let (ray, _) = try await embedded.findOrStart(
        configuration: {
            try embedded.configuration(
                environment: try RayEnvironment.locate(), serveGuard: try ClusterCode.locate().serveGuard)
        })
    try await RayCluster.withConnection(to: ray.address, configuration: .init(token: try ray.token())) {
        try await run($0)
    }
}
