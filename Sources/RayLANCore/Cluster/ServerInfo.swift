/// What a cluster says about itself in the version handshake.
public struct ServerInfo: Sendable, Hashable, Codable {
    /// The dashboard's base URL.
    public var dashboardURL: String
    /// The cluster's Ray version (`/api/version`).
    public var rayVersion: RayVersion
    /// The Ray commit (`/api/version`).
    public var rayCommit: String?
    /// The Python version the cluster runs (`/api/v0/cluster_metadata`); nil when the cluster does not say.
    public var pythonVersion: String?
    /// The Ray session name.
    public var sessionName: String?
    /// The Jobs API version (`"4"` for Ray 2.45 to 2.60).
    public var apiVersion: String?
}
