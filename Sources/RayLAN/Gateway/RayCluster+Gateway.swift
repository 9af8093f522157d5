import Foundation

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
        if deployment.access == .open && !address.isLoopback {
            throw Self.openRefused(reachableAt: address.host)
        }
        let current = try await serveStatus()
        if deployment.access == .open {
            let proxyHost = current.isRunning ? current.httpOptions?.host : (httpHost ?? "127.0.0.1")
            guard proxyHost.map(["127.0.0.1", "localhost", "::1"].contains) ?? true else {
                throw Self.openRefused(reachableAt: "Serve's proxy on \(proxyHost ?? "every address")")
            }
        }
        let code = try code ?? ClusterCode.locate()
        let staged = try code.stage(model: nil)
        defer { try? FileManager.default.removeItem(at: staged.folder) }
        let package = try WorkingDirectoryPackage.scan(staged.folder)
        if let running = current.applications[deployment.name], running.status == .running,
            running.deployedAppConfig?["runtime_env"]?["working_dir"]?.stringValue == package.uri,
            Self.accessMatches(deployment.access, ServiceKey.deployed(in: running))
        {
            return try serveEndpoint(for: deployment.name, in: current)
        }
        let upload = try await uploadIfNeeded(package)
        progress("Deploying the gateway '\(deployment.name)' (code \(upload.uri)).")
        try await writeApplication(deployment.name, access: deployment.access, httpPort: httpPort, httpHost: httpHost) {
            deployment.applicationConfig(workingDirectoryURI: upload.uri, key: $0)
        }
        _ = try await waitUntilRunning(deployment.name, timeout: timeout, progress: progress)
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

    private static func openRefused(reachableAt place: String) -> GatewayError {
        GatewayError(
            .openRefused,
            "A gateway without a key runs code for anyone who reaches it, and this cluster is reachable beyond this "
                + "machine (\(place))",
            remedy: "Deploy it with a key (the default); clients read the key from the deployed config.")
    }

    private static func accessMatches(_ access: ServiceAccess, _ deployed: ServiceKey?) -> Bool {
        switch access {
        case .key: deployed != nil
        case .givenKey(let key): deployed?.value == key.value
        case .open: deployed == nil
        }
    }
}
