// The library equivalent of
//     raylan detect PATH... --address HOST --model MODEL --format coco --report
// Build and run: swift run detect-example HOST MODEL PATH...   (e.g. 127.0.0.1:8265 yolo11s.pt ~/Pictures)
import Foundation
import RayLAN

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3 else {
    print("usage: detect-example HOST MODEL PATH...")
    exit(64)
}
let (host, model, paths) = (arguments[0], arguments[1], Array(arguments.dropFirst(2)))

// The five lines: connect, say which service, what to run, run it.
let address = try ClusterAddress(parsing: host)
try await RayCluster.withConnection(to: address, configuration: .init(token: try AuthToken.resolve())) { cluster in
    let service = DetectionRun.Service.deployIfNeeded(DetectionDeployment(model: model))
    let run = DetectionRun(
        inputs: paths, output: URL(fileURLWithPath: "raylan-out"), service: service, outputs: [.coco, .report])
    let summary = try await run.run(on: cluster) {
        if case .answered(let record) = $0 { print(record.path, record.succeeded ? "answered" : "failed") }
    }
    print(
        "\(summary.succeeded) of \(summary.inputs) images answered, \(summary.failed) failed; results in \(run.output.path)"
    )
}
