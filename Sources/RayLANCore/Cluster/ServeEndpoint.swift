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

    /// `http`, or `https` (behind a head's TLS front): the dashboard's.
    public var scheme: String
    /// The host of the cluster (the dashboard's host), without brackets for IPv6.
    public var host: String
    /// The certificate's pin, the dashboard's (one TLS front serves both).
    public var pin: CertificatePin?
    /// Serve's HTTP proxy port.
    public var port: Int
    /// The application's route prefix, e.g. `/raylan/shapes-yolo11n`; empty for the proxy itself.
    public var routePrefix: String
    /// The application's service key, sent as `Authorization: Bearer` with every request to this endpoint;
    /// nil sends none (a public application, or the proxy's own routes).
    public var key: ServiceKey?

    /// An endpoint on `address`'s host at Serve's `port`, with its scheme and pin, under `routePrefix` (empty:
    /// the proxy's own routes, such as `/-/healthz`).
    public init(
        address: ClusterAddress, port: Int = ServeEndpoint.defaultPort, routePrefix: String = "", key: ServiceKey? = nil
    ) {
        self.scheme = address.scheme
        self.pin = address.pin
        self.host = address.host
        self.port = port
        self.routePrefix = Self.normalized(routePrefix)
        self.key = key
    }

    /// The proxy's address as a ``ClusterAddress`` (scheme, host and port), for messages and probes.
    public var address: ClusterAddress { ClusterAddress(scheme: scheme, host: host, port: port, pin: pin) }

    /// The application's base URL, e.g. `http://192.168.1.130:8000/raylan/shapes-yolo11n`.
    public var baseURL: String { address.url.absoluteString + routePrefix }

    /// The URL of `path` (starting with `/`, query allowed) under the route prefix.
    public func url(_ path: String) -> String { baseURL + path }

    /// The same proxy without a route prefix or key.
    public var proxy: ServeEndpoint {
        var copy = self
        copy.routePrefix = ""
        copy.key = nil
        return copy
    }

    /// The same endpoint without its key: what an anonymous caller reaches.
    public var anonymous: ServeEndpoint {
        var copy = self
        copy.key = nil
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
