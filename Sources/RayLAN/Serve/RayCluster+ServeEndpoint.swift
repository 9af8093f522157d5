import Foundation

extension RayCluster {
    /// Serve's proxy on this cluster's host, at the port Serve reports (its default when Serve is not running).
    public func serveProxyEndpoint(_ status: ServeStatus) -> ServeEndpoint {
        ServeEndpoint(address: address, port: status.httpOptions?.port ?? ServeEndpoint.defaultPort)
    }

    /// Where the running application `name` answers and with which key: Serve's port, the route prefix and the
    /// service key (the `api_key` it was deployed with) from Serve's status, read over the dashboard.
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
        endpoint.key = ServiceKey.deployed(in: application)
        return endpoint
    }
}

extension ServiceKey {
    /// Reads a key file (the whole file, surrounding white space trimmed).
    /// - Throws: ``ServeError`` (`keyUnreadable`, a usage error) when it cannot be read or is empty.
    public static func read(file path: String) throws -> ServiceKey {
        guard let data = FileManager.default.contents(atPath: path),
            let value = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !value.isEmpty
        else {
            throw ServeError(
                .keyUnreadable, "Cannot read a service key from '\(path)'",
                remedy: "Pass a file that holds the key (any text of 16 or more characters), or leave --key-file out "
                    + "to use the key the deployment keeps.")
        }
        guard value.count >= 16, !value.contains(where: \.isWhitespace) else {
            throw ServeError(
                .keyUnreadable, "The service key in '\(path)' is shorter than 16 characters or holds white space",
                remedy: "Use a longer key without spaces, e.g. 'openssl rand -hex 32 > \(path)'.")
        }
        return ServiceKey(value: value, source: "--key-file \(path)")
    }

    /// The key an application was deployed with (its `api_key` argument), or nil when it is public or not
    /// RayLAN's.
    static func deployed(in application: ServeStatus.Application) -> ServiceKey? {
        guard let value = application.deployedAppConfig?["args"]?["api_key"]?.stringValue, !value.isEmpty else {
            return nil
        }
        return ServiceKey(value: value, source: "the deployed config of '\(application.name)'")
    }
}

extension ServeStatus.Application {
    /// Whether this is one of RayLAN's detection services (its import path is `raylan_detect.app:…`).
    public var isRayLANDetection: Bool {
        deployedAppConfig?["import_path"]?.stringValue?.hasPrefix("raylan_detect.") == true
    }
}
