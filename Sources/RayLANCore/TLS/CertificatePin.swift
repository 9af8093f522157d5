import Crypto
import Foundation

/// The SHA-256 fingerprint of a server's certificate (of its DER bytes), written `sha256:` and 64 hex digits:
/// what `raylan up --head` prints and `--fingerprint` takes. A client that holds it trusts that one certificate
/// and no other, with no certificate authority involved.
///
/// ```swift
/// let pin = try CertificatePin(parsing: "sha256:9f86d081884c7d65…")
/// let address = ClusterAddress(host: "192.168.1.130", pin: pin)   // https, pinned
/// ```
public struct CertificatePin: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The 32 bytes of the digest.
    public let digest: [UInt8]

    /// The fingerprint of a certificate given as DER bytes.
    public init(certificateDER: [UInt8]) {
        digest = Array(SHA256.hash(data: certificateDER))
    }

    /// Parses `sha256:HEX` (64 hex digits; upper case and `:` between bytes are accepted, as other tools print
    /// them; the `sha256:` prefix may be left out).
    /// - Throws: ``ClusterError`` `invalidFingerprint`, a usage error.
    public init(parsing text: String) throws {
        var hex = text.trimmingCharacters(in: .whitespaces).lowercased()
        if hex.hasPrefix("sha256:") { hex.removeFirst("sha256:".count) }
        hex.removeAll { $0 == ":" }
        let digits = hex.compactMap(\.hexDigitValue)
        guard hex.count == 64, digits.count == 64 else {
            throw ClusterError(
                .invalidFingerprint, "'\(text)' is not a certificate fingerprint",
                remedy: "Pass it as 'raylan up --head' printed it: sha256: and 64 hex digits.")
        }
        digest = stride(from: 0, to: 64, by: 2).map { UInt8(digits[$0] << 4 | digits[$0 + 1]) }
    }

    public var description: String { "sha256:" + digest.hexString }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
