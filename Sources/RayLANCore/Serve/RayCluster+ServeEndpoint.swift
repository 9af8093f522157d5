import Foundation

extension RayCluster {
    /// Serve's proxy on this cluster's host, at the port Serve reports (its default when Serve is not running).
    public func serveProxyEndpoint(_ status: ServeStatus) -> ServeEndpoint {
        ServeEndpoint(address: address, port: status.httpOptions?.port ?? ServeEndpoint.defaultPort)
    }

    /// Where the running application `name` answers and with which key: Serve's port, the route prefix and the
    /// service key from Serve's status, read over the dashboard (derived from this connection's token, or the
    /// `api_key` kept in clear on a cluster without one; see ``ServiceKey``).
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
        endpoint.key = ServiceKey.deployed(in: application, token: configuration.token)
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

    /// The key an application was deployed with: its `api_key` argument (a cluster without a token), or the
    /// key `token` derives for its `key_salt` when that matches its `api_key_sha256`. Nil when it is public,
    /// not RayLAN's, deployed with a key this caller cannot derive (another token, a `--key-file`), or
    /// without a token given here.
    static func deployed(in application: ServeStatus.Application, token: AuthToken?) -> ServiceKey? {
        let arguments = application.deployedAppConfig?["args"]
        if let value = arguments?["api_key"]?.stringValue, !value.isEmpty {
            return ServiceKey(value: value, source: "the deployed config of '\(application.name)'")
        }
        guard let token, let salt = arguments?["key_salt"]?.stringValue, !salt.isEmpty else { return nil }
        let key = derive(from: token, salt: salt)
        return key.verifier == arguments?["api_key_sha256"]?.stringValue ? key : nil
    }

    /// The verifier (SHA-256) of the key an application requires, whether it keeps the key or only the
    /// verifier; nil for a public application.
    static func deployedVerifier(in application: ServeStatus.Application) -> String? {
        let arguments = application.deployedAppConfig?["args"]
        if let value = arguments?["api_key"]?.stringValue, !value.isEmpty {
            return ServiceKey(value: value, source: "").verifier
        }
        return arguments?["api_key_sha256"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension ServeStatus.Application {
    /// Whether this is one of RayLAN's detection services (its import path is `raylan_detect.app:…`).
    public var isRayLANDetection: Bool {
        deployedAppConfig?["import_path"]?.stringValue?.hasPrefix("raylan_detect.") == true
    }
}

extension ServeStatus {
    /// What stands in for a key in a printed status.
    public static let hiddenKey = "(hidden; --show-keys shows it)"

    /// This status as it may be printed (`--json`): see ``Application/printable(showingKeys:token:)``.
    public func printable(showingKeys: Bool, token: AuthToken?) -> ServeStatus {
        var copy = self
        copy.applications = applications.mapValues { $0.printable(showingKeys: showingKeys, token: token) }
        return copy
    }
}

extension ServeStatus.Application {
    /// This application as it may be printed (`--json`): its `api_key` argument, if it keeps one, hidden. With
    /// `showingKeys`, the key the caller has (kept in clear, or derived with `token`) is written as `api_key`
    /// instead, for a script that needs it (`raylan serve status --json --show-keys`).
    public func printable(showingKeys: Bool, token: AuthToken?) -> Self {
        guard case .object(var config)? = deployedAppConfig, case .object(var arguments)? = config["args"] else {
            return self
        }
        if showingKeys, let key = ServiceKey.deployed(in: self, token: token) {
            arguments["api_key"] = .string(key.value)
        } else if arguments["api_key"] != nil {
            arguments["api_key"] = .string(ServeStatus.hiddenKey)
        } else {
            return self
        }
        config["args"] = .object(arguments)
        var copy = self
        copy.deployedAppConfig = .object(config)
        return copy
    }
}
