import Crypto
import Foundation

/// The key RayLAN's Serve applications require on every route but `/healthz`
/// (`Authorization: Bearer <key>`).
///
/// Ray's token authentication covers the dashboard, Jobs and the GCS, not Serve's HTTP proxy, so RayLAN's
/// applications check a key of their own. Where it lives:
/// - **On a cluster with a token** (Ray 2.52+ token mode; the embedded cluster and `raylan up` clusters), the
///   key is derived from the token: `rlk1.<salt>.<HMAC-SHA256(token, "raylan-service-key/v1/" + salt)>`
///   (``derive(from:salt:)``). The application's config holds only the salt (`key_salt`) and a verifier
///   (`api_key_sha256`, the key's SHA-256), so the key itself is in no config, log or file of the cluster:
///   Serve's controller logs an application's arguments in clear. A client that has the token derives the
///   key again; one without it cannot. Each deploy of a new application draws a new salt, so the detection
///   service's key is not the gateway's.
/// - **On a cluster without a token**, the key is a random one kept in clear in the application's config
///   (`api_key`), as open as the dashboard that serves that config: anyone who can read the dashboard (and
///   on such a cluster, run jobs) can read it.
/// - **A key given with `--key-file`** (and an open service, `--public`) is for clusters without a token: on
///   one with a token, every key is derived, and such a deploy is refused (``ServeError/Code/accessRefused``).
///
/// The key goes only to Serve's proxy, never to the dashboard, and the dashboard's token never to the proxy.
public struct ServiceKey: Sendable, Hashable, CustomStringConvertible {
    /// The secret.
    public var value: String
    /// Where it came from, for messages ("the deployed config of 'yolo11s'", "--key-file k").
    public var source: String

    /// For a key derived from the cluster's token, the salt it was derived with; nil for any other key.
    public var salt: String?

    public init(value: String, source: String, salt: String? = nil) {
        self.value = value
        self.source = source
        self.salt = salt
    }

    /// The key's SHA-256 as 64 hex digits: what an application's config holds instead of the key on a cluster
    /// with a token (`api_key_sha256`).
    public var verifier: String { SHA256.hash(data: Data(value.utf8)).hexString }

    /// The key that `token` gives for `salt`: `rlk1.<salt>.<HMAC-SHA256(token, "raylan-service-key/v1/" +
    /// salt)>`. Serve's proxy on a cluster RayLAN started checks this form with the token alone
    /// (`cluster/raylan_common/serve_guard.py`), so a request without such a key never reaches a replica.
    public static func derive(from token: AuthToken, salt: String) -> ServiceKey {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data((derivationLabel + salt).utf8), using: SymmetricKey(data: Data(token.value.utf8)))
        return ServiceKey(
            value: "\(derivedPrefix).\(salt).\(mac.hexString)", source: "the cluster's \(token)", salt: salt)
    }

    /// A new salt for ``derive(from:salt:)``: 16 random bytes as hex.
    public static func newSalt() -> String { randomHex(bytes: 16) }

    /// The prefix of a derived key, and the label its HMAC covers before the salt (shared with
    /// `cluster/raylan_common/serve_guard.py`).
    static let derivedPrefix = "rlk1"
    static let derivationLabel = "raylan-service-key/v1/"

    /// The application config's arguments that stand for this key: its salt and verifier for a derived key
    /// (a cluster with a token), the key itself otherwise (a cluster without one).
    var configArguments: [String: JSONValue] {
        if let salt { return ["key_salt": .string(salt), "api_key_sha256": .string(verifier)] }
        return ["api_key": .string(value)]
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
