import Foundation

/// Logical resources a job's entrypoint, a remote call or an actor reserves; Ray places the work on a node
/// that has them.
///
/// ```swift
/// let onGPU: Bool = try await gateway.call("tasks:gpu_task", resources: .gpus(1))
/// ```
public struct ResourceRequest: Sendable, Hashable, Codable {
    /// CPUs (`num_cpus`). Default nil: Ray's default (1 for a task, 0 for a job's entrypoint).
    public var cpus: Double?
    /// GPUs (`num_gpus`), fractions allowed. Default nil: none.
    public var gpus: Double?
    /// Memory in bytes (`memory`). Default nil: none reserved.
    public var memoryBytes: Int?
    /// Custom logical resources (`resources`). Default none.
    public var custom: [String: Double]

    public init(cpus: Double? = nil, gpus: Double? = nil, memoryBytes: Int? = nil, custom: [String: Double] = [:]) {
        self.cpus = cpus
        self.gpus = gpus
        self.memoryBytes = memoryBytes
        self.custom = custom
    }

    /// `count` GPUs (fractions allowed), nothing else beyond Ray's defaults.
    public static func gpus(_ count: Double) -> ResourceRequest { ResourceRequest(gpus: count) }

    /// `count` CPUs, nothing else beyond Ray's defaults.
    public static func cpus(_ count: Double) -> ResourceRequest { ResourceRequest(cpus: count) }

    /// What is wrong with the request, if anything: a negative or non-finite amount, or a nameless resource.
    public var problem: (message: String, remedy: String)? {
        for (name, value) in [("CPUs", cpus), ("GPUs", gpus)] {
            if let value, !(value >= 0 && value.isFinite) {
                return ("The number of \(name) must be 0 or more, not \(value)", "Pass e.g. 1 or 0.5.")
            }
        }
        if let memory = memoryBytes, memory < 0 {
            return ("Memory must be 0 or more bytes, not \(memory)", "Pass bytes, e.g. 2000000000.")
        }
        for (name, value) in custom where name.isEmpty || !(value >= 0 && value.isFinite) {
            return ("The resource '\(name)=\(value)' is invalid", "Use NAME=N with a name and a number of 0 or more.")
        }
        return nil
    }
}
