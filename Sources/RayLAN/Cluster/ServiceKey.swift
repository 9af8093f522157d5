import Foundation

/// The key RayLAN's Serve applications require on every route but `/healthz`
/// (`Authorization: Bearer <key>`).
///
/// Ray's token authentication covers the dashboard, Jobs and the GCS, not Serve's HTTP proxy. So a deploy
/// makes a random key and passes it to the application as its `api_key` argument: it lives in the
/// application's deployed config, which only a caller authorised on the dashboard can read, and clients
/// fetch it there (``RayCluster/serveEndpoint(for:)``). The service is exactly as protected as the
/// dashboard. The key goes only to Serve's proxy, never to the dashboard, and the dashboard's token never
/// to the proxy.
public struct ServiceKey: Sendable, Hashable, CustomStringConvertible {
    /// The secret.
    public var value: String
    /// Where it came from, for messages ("the deployed config of 'yolo11s'", "--key-file k").
    public var source: String

    public init(value: String, source: String) {
        self.value = value
        self.source = source
    }

    /// Never prints the secret.
    public var description: String { "service key from \(source)" }

    /// A new random key: 32 bytes from the system's generator, as 64 hex digits.
    public static func generate() -> ServiceKey {
        ServiceKey(value: randomHex(), source: "a new random key")
    }
}

/// Who may use one of RayLAN's Serve applications.
public enum ServiceAccess: Sendable, Hashable {
    /// Callers with the application's service key: the key it already has when it is redeployed, else a
    /// new random one. The default.
    case key
    /// Callers with this key.
    case givenKey(ServiceKey)
    /// Anyone who reaches Serve's port (`--public`).
    case open
}
