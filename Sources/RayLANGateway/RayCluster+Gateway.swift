import Foundation
import RayLANCore

extension RayCluster {
    /// A gateway to call Python functions and actors on this cluster, and to put and get objects.
    ///
    /// Deploys the gateway (``deployGateway(_:code:httpPort:httpHost:timeout:progress:)``) unless Serve runs it
    /// with this RayLAN's code already, and uploads `workingDirectory` (when the cluster does not have it) as the
    /// code every call and actor runs in.
    ///
    /// ```swift
    /// let tasks = try await cluster.gateway(workingDirectory: URL(fileURLWithPath: "project"))
    /// let onGPU: Bool = try await tasks.call("tasks:gpu_task", resources: .gpus(1))
    /// ```
    /// - Parameters:
    ///   - workingDirectory: a local folder with your modules (`module:function` names a function in it).
    ///     Default nil: only modules the cluster's Python has.
    ///   - packageOptions: what goes into the working directory's package.
    ///   - pip: packages installed for every call and actor (runtime_env `pip`). Default none.
    ///   - environment: environment variables for every call and actor. Default none.
    ///   - deployment: the gateway to deploy when needed; nil uses a running one as it is. Default
    ///     ``GatewayDeployment/init(name:access:maxPutBytes:maxJSONBytes:)``.
    ///   - httpPort: Serve's proxy port when Serve is not running yet. Default 8000.
    /// - Throws: ``GatewayError`` (`openRefused`), ``ServeError`` (`notDeployed` with `deployment` nil,
    ///   `deployFailed`), ``PackageError``, ``ClusterError``.
    public func gateway(
        workingDirectory: URL? = nil, packageOptions: PackageOptions = PackageOptions(), pip: [String] = [],
        environment: [String: String] = [:], deployment: GatewayDeployment? = GatewayDeployment(),
        httpPort: Int = ServeEndpoint.defaultPort, progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> Gateway {
        let endpoint: ServeEndpoint
        if let deployment {
            endpoint = try await deployGateway(deployment, httpPort: httpPort, progress: progress)
        } else {
            endpoint = try await serveEndpoint(for: GatewayDeployment.defaultName)
        }
        var runtime = Gateway.Runtime(pip: pip, environment: environment)
        if let workingDirectory {
            let upload = try await uploadIfNeeded(
                try WorkingDirectoryPackage.scan(workingDirectory, options: packageOptions), options: packageOptions)
            progress(
                upload.uploaded
                    ? "Uploaded \(workingDirectory.path) as \(upload.uri) (\(Formatting.bytes(Double(upload.bytes))))."
                    : "The cluster already has \(workingDirectory.path) as \(upload.uri).")
            runtime.workingDirectoryURI = upload.uri
        }
        return Gateway(cluster: self, endpoint: endpoint, runtime: runtime)
    }

    /// Deploys the gateway unless Serve runs it already with this RayLAN's code and the access asked for, and
    /// waits until it runs.
    /// - Returns: where it answers, with its key.
    /// - Throws: ``GatewayError`` (`openRefused`: no key on a cluster reachable beyond loopback), ``ServeError``,
    ///   ``PackageError``, ``ClusterError``.
    @discardableResult
    public func deployGateway(
        _ deployment: GatewayDeployment = GatewayDeployment(), code: ClusterCode? = nil, httpPort: Int = 8000,
        httpHost: String? = nil, timeout: Duration = .seconds(300), progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> ServeEndpoint {
        // The cluster's own address is judged before any request; Serve's proxy once its status is read
        // (``GatewayDeployment/refusal(on:serve:httpHost:)``).
        if deployment.access == .open && !address.isLoopback {
            throw Self.openRefused(reachableAt: address.host)
        }
        try await ensure(
            deployment, code: code, httpPort: httpPort, httpHost: httpHost, timeout: timeout, progress: progress)
        return try await serveEndpoint(for: deployment.name)
    }

    /// Ends the gateway's owner (every object, result and actor it holds) and removes its Serve application.
    /// Returns false when Serve did not run it.
    @discardableResult
    public func removeGateway(named name: String = GatewayDeployment.defaultName) async throws -> Bool {
        if let endpoint = try? await serveEndpoint(for: name) {
            _ = try? await send(.DELETE, to: endpoint, "/owner", timeout: .seconds(30))
        }
        return try await deleteServeApplication(name)
    }

    /// Where a gateway without a key could be reached from beyond this machine, or nil when only this machine
    /// reaches it. Fails closed: what cannot be shown to be loopback counts as reachable.
    ///
    /// - Parameters:
    ///   - clusterHost: the dashboard's host, as RayLAN reaches it.
    ///   - serve: Serve's status. Serve's proxy keeps the host it runs with (Ray ignores a new one while Serve
    ///     runs, with or without applications); Serve runs when it reports applications, proxies or HTTP
    ///     options, and then a host it does not report is unknown. Otherwise the deploy starts Serve on
    ///     `httpHost`.
    ///   - httpHost: the proxy's host the deploy asks for; nil is loopback (the cluster is reached through it).
    /// - Returns: the place (a host, or Serve's proxy and its host), for the refusal's message.
    static func openGatewayExposure(clusterHost: String, serve: ServeStatus, httpHost: String?) -> String? {
        guard ClusterAddress.isLoopbackHost(clusterHost) else { return clusterHost }
        let serveRuns = !serve.applications.isEmpty || !(serve.proxies ?? [:]).isEmpty || serve.httpOptions != nil
        let proxyHost = serveRuns ? serve.httpOptions?.host : (httpHost ?? "127.0.0.1")
        guard let proxyHost else { return "Serve's proxy, on a host it does not report" }
        return ClusterAddress.isLoopbackHost(proxyHost) ? nil : "Serve's proxy on \(proxyHost)"
    }

    static func openRefused(reachableAt place: String) -> GatewayError {
        GatewayError(
            .openRefused,
            "A gateway without a key runs code for anyone who reaches it, and this cluster is reachable beyond this "
                + "machine (\(place))",
            remedy: "Deploy it with a key (the default); clients read the key from the deployed config.")
    }
}
