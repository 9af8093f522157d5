import Foundation
import RayLANCore
import RayLANGateway

/// What the runs on the cluster share: the detection service they lean on, and the gateway that hosts their
/// session actors with RayLAN's cluster code.
enum OnClusterWork {
    /// The Serve proxy port a deploy uses when Serve is not running yet: the service's, else Serve's default.
    static func httpPort(of service: DetectionService) -> Int {
        if case .deployIfNeeded(_, let port) = service { return port }
        return ServeEndpoint.defaultPort
    }

    /// The gateway, deployed when needed, with RayLAN's cluster code (and `model`, a local file, as
    /// `models/<name>`) as its working directory. Also returns the model's path there (or `model` as it is,
    /// for a name the cluster downloads).
    static func gateway(
        on cluster: RayCluster, model: String?, httpPort: Int, progress: @Sendable (String) -> Void
    ) async throws -> (gateway: Gateway, model: String?) {
        let isLocalFile = model.map { FileManager.default.fileExists(atPath: $0) } ?? false
        var gateway = try await cluster.gateway(httpPort: httpPort, progress: progress)
        let staged = try await cluster.stageCode(
            try ClusterCode.locate(), model: isLocalFile ? model : nil, progress: progress)
        gateway.runtime.workingDirectoryURI = staged.uri
        return (gateway, staged.modelArgument ?? model)
    }
}
