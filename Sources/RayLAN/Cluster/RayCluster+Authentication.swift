import Foundation
import NIOHTTP1

extension RayCluster {
    /// The cluster's authentication mode from `GET /api/authentication_mode` (open without a token):
    /// `"token"` or `"disabled"`; nil when the endpoint is missing (Ray before 2.52 has no token mode) or
    /// the dashboard does not answer.
    public func authenticationMode() async -> String? {
        struct Mode: Decodable { var authentication_mode: String? }
        guard let response = try? await send(.GET, "/api/authentication_mode"), response.status == 200,
            let mode = try? JSONDecoder().decode(Mode.self, from: response.body)
        else { return nil }
        return mode.authentication_mode
    }
}
