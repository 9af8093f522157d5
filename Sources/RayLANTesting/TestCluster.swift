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
    public let token: String?
    /// The Python environment the cluster runs from.
    public let environment: RayEnvironment

    public var address: ClusterAddress { ray.address }

    /// The configuration the tests start `kind` with.
    public static func configuration(_ kind: Kind) throws -> (LocalRayConfiguration, token: String?) {
        switch kind {
        case .main:
            return (
                LocalRayConfiguration(
                    environment: try TestEnvironment.environment(.current), cpus: 4, gpus: 1, resources: ["special": 2],
                    objectStoreBytes: 200 << 20),
                nil
            )
        case .tokenAuth:
            let token = (0..<4).map { _ in UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }.joined()
            return (
                LocalRayConfiguration(
                    environment: try TestEnvironment.environment(.current), cpus: 2, objectStoreBytes: 200 << 20,
                    authToken: token),
                token
            )
        case .ray245:
            return (
                LocalRayConfiguration(
                    environment: try TestEnvironment.environment(.ray245), cpus: 2, objectStoreBytes: 200 << 20),
                nil
            )
        }
    }

    /// Starts a cluster of `kind`, runs `body`, and stops the cluster, also on failure.
    public static func with(_ kind: Kind, _ body: (TestCluster) async throws -> Void) async throws {
        let (configuration, token) = try configuration(kind)
        try await LocalRay.withLocalCluster(configuration) { ray in
            try await body(TestCluster(kind: kind, ray: ray, token: token, environment: configuration.environment))
        }
    }

    /// A connection with the cluster's token (if any).
    public func connect(token override: AuthToken?? = .none) -> RayCluster {
        let token: AuthToken? = override ?? self.token.map { AuthToken(value: $0, source: "the test cluster") }
        return RayCluster(address: address, configuration: .init(token: token))
    }

    /// Runs `body` with a connection and shuts it down afterwards.
    public func withConnection<R: Sendable>(_ body: (RayCluster) async throws -> R) async throws -> R {
        let token = self.token.map { AuthToken(value: $0, source: "the test cluster") }
        return try await RayCluster.withConnection(to: address, configuration: .init(token: token), body)
    }
}

