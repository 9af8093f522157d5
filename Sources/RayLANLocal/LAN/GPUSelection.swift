import Foundation
import RayLANCore

/// Which GPUs `raylan up` gives Ray: `all` (the default), the first `N`, or device indices `0,1`.
///
/// ```swift
/// let selection = try GPUSelection(parsing: "0,1")
/// let plan = try selection.plan(detected: await GPUSelection.detect())
/// ```
public enum GPUSelection: Sendable, Hashable, CustomStringConvertible {
    /// Every GPU that `nvidia-smi` lists (none: a CPU node).
    case all
    /// The first `N` GPUs; `0` makes a CPU node. Without a GPU, `N` logical GPUs are declared.
    case count(Int)
    /// These device indices (as `nvidia-smi` numbers them).
    case devices([Int])

    /// Parses `all`, `N`, or a comma-separated list of indices (`0,1`; one index is written `2,`).
    ///
    /// - Throws: ``HostNodeError`` (`invalidArgument`) naming the accepted forms.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "all" {
            self = .all
        } else if let count = Int(trimmed), count >= 0 {
            self = .count(count)
        } else {
            let parts = trimmed.split(separator: ",", omittingEmptySubsequences: true).map {
                Int($0.trimmingCharacters(in: .whitespaces))
            }
            guard trimmed.contains(","), !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw HostNodeError(
                    .invalidArgument, "Invalid GPU selection '\(text)'",
                    remedy:
                        "Use --gpus all, a count such as --gpus 2 (0 for a CPU node), or device indices such as --gpus 0,1."
                )
            }
            self = .devices(parts.compactMap { $0 })
        }
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .count(let count): String(count)
        case .devices(let devices): devices.map(String.init).joined(separator: ",")
        }
    }

    /// A GPU that `nvidia-smi` lists.
    public struct DetectedGPU: Sendable, Hashable, Codable {
        public var index: Int
        public var name: String
        public var memoryMiB: Int?

        public init(index: Int, name: String, memoryMiB: Int? = nil) {
            self.index = index
            self.name = name
            self.memoryMiB = memoryMiB
        }
    }

    /// What Ray is started with.
    public struct Plan: Sendable, Hashable, Codable {
        /// `--num-gpus`.
        public var count: Int
        /// `CUDA_VISIBLE_DEVICES`; nil leaves every GPU visible.
        public var visibleDevices: String?
        /// The GPUs given to Ray, as detected.
        public var devices: [DetectedGPU]
        /// True when GPUs are declared that `nvidia-smi` does not show (logical only).
        public var logicalOnly: Bool
        /// One line for the user.
        public var summary: String
    }

    /// The GPUs `nvidia-smi` lists here; empty when it is missing or fails.
    public static func detect() async -> [DetectedGPU] {
        guard let smi = ProcessGroup.executable(named: "nvidia-smi") else { return [] }
        let query = [smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]
        guard let result = try? await ProcessGroup.capture(query, timeout: .seconds(30)), result.status == 0 else {
            return []
        }
        return parse(nvidiaSMI: result.output)
    }

    /// Parses `index, name, memory.total` CSV lines.
    static func parse(nvidiaSMI output: String) -> [DetectedGPU] {
        output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 2, let index = Int(fields[0]) else { return nil }
            return DetectedGPU(index: index, name: fields[1], memoryMiB: fields.count > 2 ? Int(fields[2]) : nil)
        }
    }

    /// Turns the selection into Ray's settings for the GPUs found.
    ///
    /// - Throws: ``HostNodeError`` (`invalidArgument`) when more GPUs or other indices are asked for than
    ///   `nvidia-smi` shows.
    public func plan(detected: [DetectedGPU]) throws -> Plan {
        let found =
            detected.isEmpty
            ? "nvidia-smi shows no GPU"
            : "nvidia-smi shows \(detected.map { "\($0.index): \($0.name)" }.joined(separator: ", "))"
        switch self {
        case .all:
            if detected.isEmpty {
                return Plan(
                    count: 0, visibleDevices: nil, devices: [], logicalOnly: false,
                    summary: "No GPU: \(found), so this is a CPU node.")
            }
            return Plan(
                count: detected.count, visibleDevices: nil, devices: detected, logicalOnly: false,
                summary: "\(detected.count) GPU(s): \(found).")
        case .count(0):
            return Plan(
                count: 0, visibleDevices: "", devices: [], logicalOnly: false, summary: "No GPU (--gpus 0): a CPU node."
            )
        case .count(let count):
            if detected.isEmpty {
                return Plan(
                    count: count, visibleDevices: nil, devices: [], logicalOnly: true,
                    summary:
                        "\(count) logical GPU(s) declared, but \(found): tasks that ask for a GPU run here without one."
                )
            }
            guard count <= detected.count else {
                throw HostNodeError(
                    .invalidArgument, "--gpus \(count) asks for more GPUs than this host has (\(found))",
                    remedy: "Use --gpus all, or a count up to \(detected.count).")
            }
            let chosen = Array(detected.prefix(count))
            return Plan(
                count: count, visibleDevices: chosen.map { String($0.index) }.joined(separator: ","), devices: chosen,
                logicalOnly: false, summary: "\(count) GPU(s) of \(detected.count): \(found).")
        case .devices(let indices):
            if detected.isEmpty {
                return Plan(
                    count: indices.count, visibleDevices: nil, devices: [], logicalOnly: true,
                    summary:
                        "\(indices.count) logical GPU(s) declared, but \(found): tasks that ask for a GPU run here without one."
                )
            }
            let missing = indices.filter { index in !detected.contains { $0.index == index } }
            guard missing.isEmpty else {
                throw HostNodeError(
                    .invalidArgument,
                    "--gpus \(description) names GPU \(missing.map(String.init).joined(separator: ", ")), which this host lacks (\(found))",
                    remedy: "Use indices from nvidia-smi's list, or --gpus all.")
            }
            let chosen = detected.filter { indices.contains($0.index) }
            return Plan(
                count: chosen.count, visibleDevices: indices.map(String.init).joined(separator: ","), devices: chosen,
                logicalOnly: false, summary: "GPU(s) \(description) of \(detected.count): \(found).")
        }
    }
}
