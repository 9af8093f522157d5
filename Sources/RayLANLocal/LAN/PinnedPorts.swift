import RayLANCore
/// The fixed port layout of a node that `raylan up` starts, so that a firewall can be written for it.
///
/// With the GCS port `P` (default 6379), every node uses:
///
/// | port | what | where |
/// |---|---|---|
/// | P | GCS (joining nodes connect here) | head |
/// | P+1 | node manager (raylet) | every node |
/// | P+2 | object manager | every node |
/// | P+3 | runtime-env agent | every node |
/// | P+4 | dashboard agent, gRPC | every node |
/// | P+5 | dashboard agent, HTTP | every node |
/// | P+6 | metrics export (Prometheus) | every node |
/// | P+7, P+8 | autoscaler and dashboard metrics (Prometheus only) | head |
/// | 8265 | dashboard: Jobs, Serve and state REST (the Mac connects here) | head |
/// | 8000 | Serve HTTP proxy (detection requests) | every node |
/// | 10001 | Ray Client server (`ray://`; RayLAN does not use it) | head |
/// | 10002–10999 | worker processes (tasks, actors, Serve replicas) | every node |
extension LocalRay.Ports {
    /// Ray's defaults that RayLAN keeps.
    public static let defaultGCS = 6379
    public static let defaultDashboard = 8265
    public static let defaultServe = 8000
    public static let defaultRayClient = 10001
    public static let defaultWorkers = 10002...10999

    /// The pinned layout around the GCS port `gcs` (see the type's table).
    public static func pinned(gcs: Int = defaultGCS, dashboard: Int = defaultDashboard, serve: Int = defaultServe)
        -> Self
    {
        Self(
            gcs: gcs, dashboard: dashboard, rayClient: defaultRayClient, dashboardAgentListen: gcs + 5,
            dashboardAgentGRPC: gcs + 4, metrics: gcs + 6, nodeManager: gcs + 1, objectManager: gcs + 2,
            runtimeEnvAgent: gcs + 3, serve: serve, workers: defaultWorkers, autoscalerMetrics: gcs + 7,
            dashboardMetrics: gcs + 8)
    }

    /// One port or range that a firewall must open.
    public struct Opening: Sendable, Hashable, Codable {
        public var first: Int
        public var last: Int
        public var purpose: String
        /// True when only the head listens on it.
        public var headOnly: Bool

        /// `6379` or `6379:6385` (ufw's form).
        public var ufwPorts: String { first == last ? String(first) : "\(first):\(last)" }
        /// `6379` or `6379-6385` (firewalld's form).
        public var firewalldPorts: String { first == last ? String(first) : "\(first)-\(last)" }
    }

    /// What must be reachable from the LAN (TCP), by port. The Prometheus-only metrics ports of the head
    /// are left out.
    public var openings: [Opening] {
        var result = [
            Opening(first: gcs, last: gcs, purpose: "GCS (nodes join here)", headOnly: true),
            Opening(
                first: dashboard, last: dashboard,
                purpose: "dashboard: Jobs, Serve and state REST (RayLAN connects here)", headOnly: true),
            Opening(first: serve, last: serve, purpose: "Serve HTTP proxy (detection requests)", headOnly: false),
            Opening(
                first: rayClient, last: rayClient, purpose: "Ray Client server (ray://; RayLAN does not need it)",
                headOnly: true),
        ]
        let nodePorts = [
            nodeManager, objectManager, runtimeEnvAgent, dashboardAgentGRPC, dashboardAgentListen, metrics,
        ]
        if let low = nodePorts.min(), let high = nodePorts.max(), high - low == nodePorts.count - 1 {
            result.append(
                Opening(
                    first: low, last: high,
                    purpose: "node manager, object manager, runtime-env agent, dashboard agent, metrics",
                    headOnly: false))
        } else {
            result += nodePorts.map { Opening(first: $0, last: $0, purpose: "node service", headOnly: false) }
        }
        if let workers {
            result.append(
                Opening(
                    first: workers.lowerBound, last: workers.upperBound,
                    purpose: "worker processes (tasks, actors, Serve replicas)", headOnly: false))
        }
        return result.sorted { $0.first < $1.first }
    }

    /// The openings with adjacent ranges merged (6379 + 6380–6385 → 6379–6385), for firewall rules.
    var firewallRanges: [Opening] {
        var merged: [Opening] = []
        for opening in openings {
            if var last = merged.last, last.last + 1 == opening.first {
                last.last = opening.last
                last.purpose += "; " + opening.purpose
                last.headOnly = last.headOnly && opening.headOnly
                merged[merged.count - 1] = last
            } else {
                merged.append(opening)
            }
        }
        return merged
    }

    /// Every TCP port a node with this layout may listen on (for checks): the openings plus the head's
    /// metrics ports.
    public var allPorts: Set<Int> {
        var ports = Set(openings.flatMap { $0.first...$0.last })
        if let port = autoscalerMetrics { ports.insert(port) }
        if let port = dashboardMetrics { ports.insert(port) }
        return ports
    }

    /// `ufw` commands that open the layout to `subnet` (e.g. `192.168.1.0/24`).
    public func ufwRules(from subnet: String) -> [String] {
        firewallRanges.map { "sudo ufw allow proto tcp from \(subnet) to any port \($0.ufwPorts)" }
    }

    /// `firewall-cmd` commands that open the layout to `subnet`, then reload.
    public func firewalldRules(from subnet: String) -> [String] {
        firewallRanges.map {
            "sudo firewall-cmd --permanent --add-rich-rule='rule family=\"ipv4\" source address=\"\(subnet)\" port port=\"\($0.firewalldPorts)\" protocol=\"tcp\" accept'"
        } + ["sudo firewall-cmd --reload"]
    }
}
