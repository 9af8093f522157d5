import Foundation

/// Where Ray Serve answers HTTP: the cluster's host, Serve's proxy port, and an application's route prefix.
///
/// Serve's proxy is not the dashboard: it listens on its own port (`http_options.port`, 8000 by default) on
/// every node, and each application has a route prefix (`/raylan/<name>` for RayLAN's services). Read it
/// from Serve's status with ``RayCluster/serveEndpoint(for:)`` rather than building URLs by hand.
///
/// ```swift
/// let endpoint = try await cluster.serveEndpoint(for: "shapes-yolo11n")
/// print(endpoint.url("/detect"))   // http://192.168.1.130:8000/raylan/shapes-yolo11n/detect
/// ```
public struct ServeEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Serve's default proxy port.
    public static let defaultPort = 8000

    /// The host of the cluster (the dashboard's host), without brackets for IPv6.
    public var host: String
    /// Serve's HTTP proxy port.
    public var port: Int
    /// The application's route prefix, e.g. `/raylan/shapes-yolo11n`; empty for the proxy itself.
    public var routePrefix: String

    /// An endpoint on `address`'s host at Serve's `port`, under `routePrefix` (empty: the proxy's own routes,
    /// such as `/-/healthz`).
    public init(address: ClusterAddress, port: Int = ServeEndpoint.defaultPort, routePrefix: String = "") {
        self.host = address.host
        self.port = port
        self.routePrefix = Self.normalized(routePrefix)
    }

    /// The proxy's address as a ``ClusterAddress`` (scheme, host and port), for messages and probes.
    public var address: ClusterAddress { ClusterAddress(scheme: "http", host: host, port: port) }

    /// The application's base URL, e.g. `http://192.168.1.130:8000/raylan/shapes-yolo11n`.
    public var baseURL: String { address.url.absoluteString + routePrefix }

    /// The URL of `path` (starting with `/`, query allowed) under the route prefix.
    public func url(_ path: String) -> String { baseURL + path }

    /// The same proxy without a route prefix.
    public var proxy: ServeEndpoint {
        var copy = self
        copy.routePrefix = ""
        return copy
    }

    public var description: String { baseURL }

    /// `/` alone and a trailing `/` add nothing to a URL: `/raylan/x/` → `/raylan/x`, `/` → ``.
    static func normalized(_ prefix: String) -> String {
        var prefix = prefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.isEmpty && !prefix.hasPrefix("/") { prefix = "/" + prefix }
        return prefix
    }
}

extension RayCluster {
    /// Serve's proxy on this cluster's host, at the port Serve reports (its default when Serve is not running).
    public func serveProxyEndpoint(_ status: ServeStatus) -> ServeEndpoint {
        ServeEndpoint(address: address, port: status.httpOptions?.port ?? ServeEndpoint.defaultPort)
    }

    /// Where the running application `name` answers: Serve's port and the route prefix from Serve's status.
    /// - Throws: ``ServeError`` (`notDeployed`) when Serve does not run `name`, ``ClusterError``.
    public func serveEndpoint(for name: String) async throws -> ServeEndpoint {
        try serveEndpoint(for: name, in: try await serveStatus())
    }

    /// Like ``serveEndpoint(for:)`` with a status already read.
    public func serveEndpoint(for name: String, in status: ServeStatus) throws -> ServeEndpoint {
        guard let application = status.applications[name], application.status == .running else {
            throw ServeError.notDeployed(name, on: address)
        }
        var endpoint = serveProxyEndpoint(status)
        endpoint.routePrefix = ServeEndpoint.normalized(application.routePrefix ?? "/\(name)")
        return endpoint
    }
}
