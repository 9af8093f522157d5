/// One Ray node as RayLAN reports it.
public struct NodeInfo: Sendable, Hashable, Codable {
    /// A resource's use on this node: `used` of `total`.
    public struct Usage: Sendable, Hashable, Codable {
        public var used: Double
        public var total: Double
        public var available: Double { max(total - used, 0) }
    }

    /// A GPU that the dashboard agent sees (via NVML), where it reports one.
    public struct GPU: Sendable, Hashable, Codable {
        public var index: Int?
        public var name: String?
        /// Percent.
        public var utilization: Double?
        /// MiB.
        public var memoryUsedMiB: Double?
        /// MiB.
        public var memoryTotalMiB: Double?
    }

    public var nodeID: String
    public var ip: String
    public var hostname: String?
    public var isHead: Bool
    /// ALIVE or DEAD.
    public var state: State
    /// Whether the node is ALIVE.
    public var isAlive: Bool { state == .alive }
    /// Logical CPUs.
    public var cpus: Usage
    /// Logical GPUs.
    public var gpus: Usage
    /// Ray's logical `memory` resource, bytes.
    public var memory: Usage
    /// The host's physical memory in bytes (used of total), where the agent reports it.
    public var hostMemory: Usage?
    /// The host's CPU utilisation in percent, where the agent reports it.
    public var cpuPercent: Double?
    /// Custom resources: every logical resource except CPU, GPU, memory, object store and the
    /// automatic `node:…` and `accelerator_type:…` markers.
    public var customResources: [String: Usage]
    public var gpuDevices: [GPU]

    /// A node's state as Ray's State API reports it. A struct, so a state that a newer Ray adds still
    /// decodes; it encodes as Ray's own string.
    public struct State: StringValue {
        /// Ray's own spelling, such as `ALIVE`.
        public var rawValue: String
        /// A state by Ray's spelling; any string is accepted.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Running and heartbeating to the GCS.
        public static let alive = State(rawValue: "ALIVE")
        /// Stopped or lost (no heartbeat).
        public static let dead = State(rawValue: "DEAD")
        /// RayLAN's own: the State API listed the node without a state.
        public static let unknown = State(rawValue: "UNKNOWN")

    }
}
