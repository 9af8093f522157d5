/// A snapshot of a cluster: versions, nodes with resource use, and jobs that have not finished.
public struct ClusterState: Sendable, Hashable, Codable {
    public var server: ServerInfo
    public var nodes: [NodeInfo]
    /// PENDING and RUNNING jobs.
    public var activeJobs: [JobInfo]

    /// Logical resources summed over alive nodes.
    public var totalCPUs: NodeInfo.Usage { sum(\.cpus) }
    public var totalGPUs: NodeInfo.Usage { sum(\.gpus) }

    private func sum(_ key: KeyPath<NodeInfo, NodeInfo.Usage>) -> NodeInfo.Usage {
        nodes.filter(\.isAlive).reduce(NodeInfo.Usage(used: 0, total: 0)) {
            NodeInfo.Usage(used: $0.used + $1[keyPath: key].used, total: $0.total + $1[keyPath: key].total)
        }
    }
}
