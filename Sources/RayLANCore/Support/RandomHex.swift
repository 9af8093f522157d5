import Foundation

/// `count` random bytes from the system's generator, as lower-case hex: the secrets RayLAN makes (cluster
/// tokens, service keys, the local view's URL token).
public func randomHex(bytes count: Int = 32) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }.hexString
}

extension Sequence<UInt8> {
    /// The bytes as lower-case hex, two digits each: digests, keys, package names.
    package var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
