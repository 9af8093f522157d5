import Foundation

/// A Serve application that runs RayLAN's cluster code: the detection service and the gateway. Both are had
/// one way, ``RayCluster/ensure(_:code:httpPort:httpHost:redeploy:timeout:progress:)``.
package protocol ServeApplication: Sendable {
    /// Serve's application name.
    var name: String { get }
    /// Who may call it.
    var access: ServiceAccess { get }
    /// A model file on this machine that travels with the code (as `models/<file>`); nil for none.
    var localModel: String? { get }
    /// The model identity Serve must report before the application counts as running; nil for none.
    var identity: DetectionDeployment.ModelIdentity? { get }
    /// Serve's config for the application, with the code at `code` and the arguments that stand for its key.
    func applicationConfig(code: StagedCode, keyArguments: [String: JSONValue]) -> JSONValue
    /// Whether `running` (RUNNING in Serve) is this application as asked, with this code: then it is kept.
    func isRunning(as running: ServeStatus.Application, code: StagedCode, token: AuthToken?) -> Bool
    /// Refuses the deploy, before anything is uploaded, where Serve's state or the cluster's address forbid it.
    func refusal(on cluster: RayCluster, serve: ServeStatus, httpHost: String?) -> (any Error)?
}

extension ServeApplication {
    package var localModel: String? { nil }
    package var identity: DetectionDeployment.ModelIdentity? { nil }
    package func refusal(on cluster: RayCluster, serve: ServeStatus, httpHost: String?) -> (any Error)? { nil }
}

/// RayLAN's cluster code (with a model file) as a package on the cluster.
package struct StagedCode: Sendable, Hashable {
    /// Which code and model: the cache's key in a connection.
    package struct Key: Sendable, Hashable {
        package var directory: String
        package var model: String?
    }

    /// The package's URI, `gcs://_ray_pkg_<content hash>.zip`.
    package var uri: String
    /// `models/<file>` when a model file travels in it; else nil.
    package var modelArgument: String?

    /// `_ray_pkg_<content hash>.zip`.
    package var packageName: String { String(uri.dropFirst("gcs://".count)) }
}

extension RayCluster {
    /// Has `application` run in Serve with this RayLAN's code: kept where Serve runs it as asked already (unless
    /// `redeploy`), else written into Serve's config, every other application kept, and waited for.
    ///
    /// - Parameters:
    ///   - code: where RayLAN's cluster code is. Default ``ClusterCode/locate(environment:executablePath:)``.
    ///   - httpPort: the Serve proxy's port when Serve is not running yet.
    ///   - httpHost: the address Serve's proxy binds to when Serve is not running yet (see ``deploy(_:code:httpPort:httpHost:timeout:progress:)``).
    ///   - redeploy: write the application even where Serve runs it as asked.
    /// - Returns: the application as Serve reports it, RUNNING.
    @discardableResult
    package func ensure(
        _ application: some ServeApplication, code: ClusterCode? = nil, httpPort: Int, httpHost: String?,
        redeploy: Bool = false, timeout: Duration, progress: @Sendable (String) -> Void
    ) async throws -> ServeStatus.Application {
        let current = try await serveStatus()
        if let refusal = application.refusal(on: self, serve: current, httpHost: httpHost) { throw refusal }
        let staged = try await stageCode(
            try code ?? ClusterCode.locate(), model: application.localModel, progress: progress)
        if !redeploy, let running = current.applications[application.name], running.status == .running,
            application.isRunning(as: running, code: staged, token: configuration.token)
        {
            return running
        }
        progress("Deploying '\(application.name)' (code \(staged.uri)).")
        try await writeApplication(
            application.name, access: application.access, httpPort: httpPort, httpHost: httpHost
        ) { application.applicationConfig(code: staged, keyArguments: $0) }
        return try await waitUntilRunning(
            application.name, identity: application.identity, timeout: timeout, progress: progress)
    }

    /// Stages `code` (with `model`, a file on this machine) and uploads it where the cluster does not have it.
    /// Once per connection while the files stay as they were (same paths, sizes and modification times) and the
    /// cluster keeps the package: a run over many sources, and the detection service and the gateway with the
    /// same model, share one staging.
    /// - Throws: ``ServeError`` (`invalidModel`: the model and code over Ray's upload cap), ``PackageError``,
    ///   ``ClusterError``.
    package func stageCode(_ code: ClusterCode, model: String?, progress: @Sendable (String) -> Void) async throws
        -> StagedCode
    {
        let key = StagedCode.Key(directory: code.directory.standardizedFileURL.path, model: model)
        let stamp = code.stamp(model: model)
        // The check for the package also pins it on the cluster for another 10 minutes, as an upload would.
        if let cached = stagedCode.withLock({ $0[key] }), cached.stamp == stamp,
            try await hasPackage(named: cached.code.packageName)
        {
            return cached.code
        }
        let staged = try code.stage(model: model)
        defer { try? FileManager.default.removeItem(at: staged.folder) }
        let package = try WorkingDirectoryPackage.scan(staged.folder)
        stagings.withLock { $0 += 1 }
        let upload: PackageUpload
        do {
            upload = try await uploadIfNeeded(package)
        } catch let error as PackageError where error.code == .tooLarge && model != nil {
            throw ServeError(
                .invalidModel,
                "The model '\(model ?? "")' and RayLAN's cluster code zip to more than Ray's 100 MiB upload cap",
                remedy:
                    "Copy the model to the cluster and pass its path there, or use a name Ultralytics downloads (e.g. yolo11s.pt)."
            )
        }
        // Said only when it was sent: a cluster that has it already is the usual case (every `raylan call`).
        if upload.uploaded {
            progress(
                "Uploaded RayLAN's cluster code\(model == nil ? "" : " with the model") as \(upload.uri) "
                    + "(\(Formatting.bytes(Double(upload.bytes)))).")
        }
        let result = StagedCode(uri: upload.uri, modelArgument: staged.modelArgument)
        stagedCode.withLock { $0[key] = (stamp, result) }
        return result
    }
}

extension ServeStatus.Application {
    /// Whether this application, as deployed, lets in who `access` names.
    package func grants(_ access: ServiceAccess, token: AuthToken?) -> Bool {
        switch access {
        case .key: ServiceKey.deployed(in: self, token: token) != nil
        case .givenKey(let key): ServiceKey.deployedVerifier(in: self) == key.verifier
        case .open: ServiceKey.deployedVerifier(in: self) == nil
        }
    }

    /// The package Serve runs it from (`runtime_env.working_dir`).
    package var workingDirectoryURI: String? { deployedAppConfig?["runtime_env"]?["working_dir"]?.stringValue }
}

/// The detection service, with the model identity it is deployed with.
struct DetectionServiceApplication: ServeApplication {
    var deployment: DetectionDeployment
    var identity: DetectionDeployment.ModelIdentity?

    var name: String { deployment.name }
    var access: ServiceAccess { deployment.access }
    var localModel: String? { deployment.isLocalFile ? deployment.model : nil }

    func applicationConfig(code: StagedCode, keyArguments: [String: JSONValue]) -> JSONValue {
        deployment.applicationConfig(
            workingDirectoryURI: code.uri, modelArgument: code.modelArgument ?? deployment.model,
            keyArguments: keyArguments, identity: identity)
    }

    /// The same model, code, access and deployment options.
    func isRunning(as running: ServeStatus.Application, code: StagedCode, token: AuthToken?) -> Bool {
        let asked = applicationConfig(code: code, keyArguments: [:])
        return running.modelIdentity == identity && running.workingDirectoryURI == code.uri
            && running.grants(access, token: token)
            && running.deployedAppConfig?["deployments"] == asked["deployments"]
    }
}
