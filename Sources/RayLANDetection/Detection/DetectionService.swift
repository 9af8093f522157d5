import Foundation
import RayLANCore

/// The detection service a run uses (``DetectionRun/Service``).
public enum DetectionService: Sendable, Hashable {
    /// The running application of this name; the run fails (``ServeError`` `notDeployed`) when it is not,
    /// and with `model`, when it runs another model (``ServeError`` `modelMismatch`).
    case running(String, model: DetectionDeployment.ModelIdentity? = nil)
    /// This deployment's application, deployed first when it is not RUNNING or runs another model (by
    /// ``DetectionDeployment/ModelIdentity``: a file's SHA-256 and backend), with Serve's proxy at `httpPort`
    /// when Serve itself is not running yet.
    case deployIfNeeded(DetectionDeployment, httpPort: Int = ServeEndpoint.defaultPort)

    /// The Serve application's name.
    public var application: String {
        switch self {
        case .running(let name, _): name
        case .deployIfNeeded(let deployment, _): deployment.name
        }
    }
}

extension DetectionService {
    /// What ``ensure(_:key:on:events:)`` will do, decided from Serve's status before anything is written.
    struct Plan {
        /// The model the run's lines record.
        var model: DetectionDeployment.ModelIdentity?
        /// The running application to use, or nil to deploy `deployment`.
        var application: ServeStatus.Application?
        var status: ServeStatus
        var deployment: DetectionDeployment?
        var httpPort: Int = ServeEndpoint.defaultPort

        func settings(_ options: DetectionOptions, maxSide: MaxSide) -> DetectionRecord.Settings {
            DetectionRecord.Settings(
                model: model, options: options,
                imageSize: application.map(\.deployedImageSize) ?? deployment?.imageSize, maxSide: maxSide)
        }
    }

    /// The model the service must run: the deployment's (a local file hashed), or the one `running` names.
    func model() throws -> DetectionDeployment.ModelIdentity? {
        switch self {
        case .running(_, let model): model
        case .deployIfNeeded(let deployment, _): try deployment.modelIdentity()
        }
    }

    /// Reuse the application when it runs the model; else deploy it (``Service/deployIfNeeded(_:httpPort:)``)
    /// or refuse (``Service/running(_:model:)``).
    func plan(
        on cluster: RayCluster, status: ServeStatus, model: DetectionDeployment.ModelIdentity?
    ) throws -> Plan {
        let running = status.applications[application].flatMap { $0.status == .running ? $0 : nil }
        switch self {
        case .running(let name, let expected):
            guard let running else { throw ServeError.notDeployed(name, on: cluster.address) }
            if let expected, running.modelIdentity != expected {
                let actual =
                    running.modelIdentity?.description ?? "unrecorded (deployed without RayLAN's model identity)"
                throw ServeError(
                    .modelMismatch, "The detection service '\(name)' runs the model \(actual), not \(expected)",
                    remedy: "Run detect without --no-deploy to redeploy it with this model, or pass the model it runs.")
            }
            return Plan(model: expected ?? running.modelIdentity, application: running, status: status)
        case .deployIfNeeded(let deployment, let httpPort):
            if let running, running.modelIdentity == model {
                return Plan(model: model, application: running, status: status)
            }
            return Plan(model: model, status: status, deployment: deployment, httpPort: httpPort)
        }
    }

    /// Makes sure the service runs the model, deploying it (``deployIfNeeded(_:httpPort:)``) or refusing
    /// (``running(_:model:)``) as ``plan(on:status:model:)`` decides from Serve's status now.
    @discardableResult
    func ensureRunning(
        key: ServiceKey?, on cluster: RayCluster, events: @Sendable (DetectionEvent) -> Void
    ) async throws -> DetectionClient {
        let plan = try plan(on: cluster, status: try await cluster.serveStatus(), model: try model())
        return try await ensure(plan, key: key, on: cluster, events: events)
    }

    /// A client for the service, deploying it first when the plan says so.
    func ensure(
        _ plan: Plan, key: ServiceKey?, on cluster: RayCluster,
        events: @Sendable (DetectionEvent) -> Void
    ) async throws -> DetectionClient {
        guard let deployment = plan.deployment else {
            var endpoint = try cluster.serveEndpoint(for: application, in: plan.status)
            if let key { endpoint.key = key }
            return DetectionClient(cluster: cluster, endpoint: endpoint)
        }
        events(.deploying(deployment))
        if let other = plan.status.applications[deployment.name], let model = plan.model, other.modelIdentity != model {
            events(
                .preparing(
                    "'\(deployment.name)' runs \(other.modelIdentity?.description ?? "an unrecorded model"); "
                        + "redeploying it with \(model)."))
        }
        try await cluster.deploy(
            deployment, identity: plan.model, httpPort: plan.httpPort, progress: { events(.preparing($0)) })
        return try await DetectionClient(cluster: cluster, application: deployment.name, key: key)
    }
}
