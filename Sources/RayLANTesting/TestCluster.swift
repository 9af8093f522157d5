import Foundation
import RayLAN

/// A private local Ray for tests, with the settings the suites rely on.
public struct TestCluster: Sendable {
    /// What the cluster is for.
    public enum Kind: String, Sendable {
        /// Ray 2.60, no authentication, logical resources: 4 CPUs, 1 GPU (no real GPU needed), `special: 2`.
        case main
        /// Ray 2.60 with token authentication (`RAY_AUTH_MODE=token`).
        case tokenAuth
        /// Ray 2.45.0, the seed's version.
        case ray245
    }

    public let kind: Kind
    public let ray: LocalRay
    /// The token, for ``Kind/tokenAuth``.
    public var token: AuthToken? { configuration.authToken }
    /// The configuration the cluster was started with.
    public let configuration: LocalRayConfiguration
    /// The Python environment the cluster runs from.
    public var environment: RayEnvironment { configuration.environment }

    public var address: ClusterAddress { ray.address }

    /// The configuration the tests start `kind` with; for ``Kind/tokenAuth`` with a new random token.
    public static func configuration(_ kind: Kind) throws -> LocalRayConfiguration {
        switch kind {
        case .main:
            return LocalRayConfiguration(
                environment: try TestEnvironment.environment(.current), cpus: 4, gpus: 1, resources: ["special": 2],
                objectStoreBytes: 200 << 20)
        case .tokenAuth:
            return LocalRayConfiguration(
                environment: try TestEnvironment.environment(.current), cpus: 2, objectStoreBytes: 200 << 20,
                authToken: AuthToken.generate(source: .inline("the test cluster")))
        case .ray245:
            return LocalRayConfiguration(
                environment: try TestEnvironment.environment(.ray245), cpus: 2, objectStoreBytes: 200 << 20)
        }
    }

    /// Starts a cluster of `kind`, runs `body`, and stops the cluster, also on failure.
    public static func with(_ kind: Kind, _ body: (TestCluster) async throws -> Void) async throws {
        let configuration = try Self.configuration(kind)
        try await LocalRay.withLocalCluster(configuration) { ray in
            try await body(TestCluster(kind: kind, ray: ray, configuration: configuration))
        }
    }

    /// A connection with the cluster's token (if any).
    public func connect(token override: AuthToken?? = .none) -> RayCluster {
        RayCluster(address: address, configuration: .init(token: override ?? token))
    }

    /// Runs `body` with a connection and shuts it down afterwards.
    public func withConnection<R: Sendable>(_ body: (RayCluster) async throws -> R) async throws -> R {
        try await RayCluster.withConnection(to: address, configuration: .init(token: token), body)
    }
}
