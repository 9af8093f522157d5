import Foundation
import NIOHTTP1

extension RayCluster {
    /// Versions, every node with its resource use, and the jobs that have not finished.
    ///
    /// Nodes come from `/nodes?view=summary` (totals, host metrics, GPUs); resource use from
    /// `/api/cluster_status` (`usageByNode`). Both are internal dashboard endpoints, read leniently.
    public func state() async throws -> ClusterState {
        let info = try await serverInfo()
        async let nodes = self.nodes()
        async let jobs = self.jobs()
        let active = try await jobs.filter { !$0.status.isTerminal }
        return try await ClusterState(server: info, nodes: nodes, activeJobs: active)
    }

    /// Every node with its resource use (``state()`` without the versions and jobs), alive ones first, the head
    /// first among them.
    public func nodes() async throws -> [NodeInfo] {
        async let listed: StateNodesResponse = getJSON("/api/v0/nodes?limit=10000", what: "GET /api/v0/nodes")
        async let summary: NodeSummaryResponse? = try? getJSON("/nodes?view=summary", what: "GET /nodes?view=summary")
        async let status: ClusterStatusResponse? = try? getJSON("/api/cluster_status", what: "GET /api/cluster_status")
        let usage = await status?.data?.clusterStatus?.loadMetricsReport?.usageByNode ?? [:]
        let summaries = await Dictionary(
            (summary?.data.summary ?? []).compactMap { entry in entry.raylet?.nodeId.map { ($0, entry) } },
            uniquingKeysWith: { first, _ in first })
        return try await listed.data.result.result.map {
            Self.node(from: $0, summary: summaries[$0.node_id], usage: usage[$0.node_id] ?? [:])
        }.sorted { ($0.isAlive ? 0 : 1, $0.isHead ? 0 : 1, $0.ip) < ($1.isAlive ? 0 : 1, $1.isHead ? 0 : 1, $1.ip) }
    }

    /// Joins the State API's node (exact resource names) with the dashboard's summary (host metrics, GPUs)
    /// and the autoscaler's per-node `[used, total]` (whose keys the dashboard camelCases).
    static func node(
        from node: StateNodesResponse.Node, summary: NodeSummaryResponse.Entry?, usage: [String: [Double]]
    ) -> NodeInfo {
        let totals = node.resources_total ?? [:]
        let state = node.state.map(NodeInfo.State.init(rawValue:)) ?? .unknown
        func resource(_ name: String) -> NodeInfo.Usage {
            let pair = usage[name] ?? usage[camelCased(name)]
            let total = totals[name] ?? (pair?.count == 2 ? pair![1] : 0)
            return NodeInfo.Usage(used: state == .alive ? (pair?.first ?? 0) : 0, total: total)
        }
        let standard: Set<String> = ["CPU", "GPU", "memory", "object_store_memory"]
        var custom: [String: NodeInfo.Usage] = [:]
        for name in totals.keys
        where !standard.contains(name) && !name.hasPrefix("node:")
            && !name.hasPrefix("accelerator_type:")
        {
            custom[name] = resource(name)
        }
        var hostMemory: NodeInfo.Usage?
        if let mem = summary?.mem, mem.count >= 2 {
            hostMemory = NodeInfo.Usage(used: mem[0] - mem[1], total: mem[0])  // psutil: total, available, …
        }
        return NodeInfo(
            nodeID: node.node_id, ip: node.node_ip ?? summary?.ip ?? "?", hostname: summary?.hostname,
            isHead: node.is_head_node ?? false, state: state,
            cpus: resource("CPU"), gpus: resource("GPU"), memory: resource("memory"), hostMemory: hostMemory,
            cpuPercent: summary?.cpu, customResources: custom,
            gpuDevices: (summary?.gpus ?? []).map {
                NodeInfo.GPU(
                    index: $0.index, name: $0.name, utilization: $0.utilizationGpu, memoryUsedMiB: $0.memoryUsed,
                    memoryTotalMiB: $0.memoryTotal)
            })
    }

    /// The dashboard's `to_camel_case` for dictionary keys: `object_store_memory` → `objectStoreMemory`,
    /// `my_res` → `myRes` (each later part through Python's `str.title()`).
    static func camelCased(_ name: String) -> String {
        let parts = name.components(separatedBy: "_")
        return parts[0] + parts.dropFirst().map(pythonTitle).joined()
    }

    /// Python's `str.title()`: a letter after a letter is lowered, any other letter is raised.
    static func pythonTitle(_ word: String) -> String {
        var result = ""
        var previousIsLetter = false
        for character in word {
            result += previousIsLetter ? character.lowercased() : character.uppercased()
            previousIsLetter = character.isLetter && (character.isUppercase || character.isLowercase)
        }
        return result
    }
}

/// `GET /api/v0/nodes` (State API): every node, alive or dead, with exact resource names.
struct StateNodesResponse: Decodable {
    struct Node: Decodable {
        var node_id: String
        var node_ip: String?
        var is_head_node: Bool?
        var state: String?
        var resources_total: [String: Double]?
    }
    struct Listing: Decodable { var result: [Node] }
    struct DataPart: Decodable { var result: Listing }
    var data: DataPart
}

/// `GET /nodes?view=summary` (internal, camelCase).
struct NodeSummaryResponse: Decodable {
    struct Entry: Decodable {
        struct Raylet: Decodable {
            var nodeId: String?
            var state: String?
            var isHeadNode: Bool?
            var nodeManagerAddress: String?
            var resourcesTotal: [String: Double]?
        }
        struct GPU: Decodable {
            var index: Int?
            var name: String?
            var utilizationGpu: Double?
            var memoryUsed: Double?
            var memoryTotal: Double?
        }
        var hostname: String?
        var ip: String?
        var cpu: Double?
        var mem: [Double]?
        var gpus: [GPU]?
        var raylet: Raylet?
    }
    struct DataPart: Decodable { var summary: [Entry] }
    var data: DataPart
}

/// `GET /api/cluster_status` (internal): per-node `[used, total]` for each resource.
struct ClusterStatusResponse: Decodable {
    struct DataPart: Decodable {
        struct Status: Decodable {
            struct Report: Decodable {
                var usageByNode: [String: [String: [Double]]]?
            }
            var loadMetricsReport: Report?
        }
        var clusterStatus: Status?
    }
    var data: DataPart?
}
