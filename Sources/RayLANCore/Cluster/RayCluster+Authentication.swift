import Foundation
import NIOHTTP1

extension RayCluster {
    /// How a cluster's dashboard authenticates requests, as `GET /api/authentication_mode` reports it.
    /// A struct, so a mode that a newer Ray adds still decodes; it encodes as Ray's own string.
    public struct AuthenticationMode: StringValue {
        /// Ray's own spelling, such as `token`.
        public var rawValue: String
        /// A mode by Ray's spelling; any string is accepted.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Token authentication (Ray ≥ 2.52): every request needs the cluster's token.
        public static let token = AuthenticationMode(rawValue: "token")
        /// No authentication: anyone who reaches the dashboard can use it.
        public static let disabled = AuthenticationMode(rawValue: "disabled")

    }

    /// The cluster's authentication mode from `GET /api/authentication_mode` (open without a token).
    ///
    /// - Returns: ``AuthenticationMode/token`` or ``AuthenticationMode/disabled`` (or a mode a newer Ray
    ///   adds); nil when the endpoint is missing (Ray before 2.52 has no token mode) or the dashboard does
    ///   not answer.
    public func authenticationMode() async -> AuthenticationMode? {
        struct Mode: Decodable { var authentication_mode: AuthenticationMode? }
        guard let response = try? await send(.GET, "/api/authentication_mode"), response.status == 200,
            let mode = try? JSONDecoder().decode(Mode.self, from: response.body)
        else { return nil }
        return mode.authentication_mode
    }
}
