import Foundation
import RayLAN

/// What the doctor's probe job (`cluster/raylan_doctor/probe.py`) found on each alive node.
public struct NodeProbe: Sendable, Hashable, Codable {
    public struct NvidiaSMI: Sendable, Hashable, Codable {
        public struct GPU: Sendable, Hashable, Codable {
            public var index: String?
            public var name: String?
            public var memory_total_mib: Double?
            public var memory_used_mib: Double?
        }
        public var found: Bool
        public var gpus: [GPU]?
        public var error: String?
    }

    public struct Torch: Sendable, Hashable, Codable {
        public var installed: Bool
        public var version: String?
        public var cuda_build: String?
        public var available: Bool?
        public var devices: [String]?
        public var matmul_ok: Bool?
        public var error: String?
    }

    public struct Node: Sendable, Hashable, Codable {
        public var node_id: String?
        public var ip: String?
        public var hostname: String?
        public var ray_version: String?
        public var python_version: String?
        public var gpus_declared: Double?
        public var gpus_reserved: Double?
        public var cuda_visible_devices: String?
        public var nvidia_smi: NvidiaSMI?
        public var torch: Torch?
        /// Set when the node's task failed or did not answer.
        public var error: String?
    }

    public var nodes: [Node]
}

extension RayCluster {
    /// Runs the probe job (one task pinned to each alive node) and returns what it printed.
    ///
    /// - Throws: ``JobError`` when the job fails, with its id for `raylan job logs`.
    public func probeNodes(code: ClusterCode, timeout: Duration = .seconds(120)) async throws -> NodeProbe {
        let staged = try code.stage(model: nil)
        defer { try? FileManager.default.removeItem(at: staged.folder) }
        var spec = JobSpec(entrypoint: "python -m raylan_doctor.probe", workingDirectory: staged.folder)
        spec.environment = ["RAYLAN_PROBE_TIMEOUT_S": "60"]
        spec.metadata = ["raylan": "doctor"]
        return try await runForResult(spec, marker: "RAYLAN_PROBE", timeout: timeout)
    }
}
