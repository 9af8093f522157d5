import Foundation

/// `count` random bytes from the system's generator, as lower-case hex: the secrets RayLAN makes (cluster
/// tokens, service keys).
func randomHex(bytes count: Int = 32) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }
        .joined()
}
