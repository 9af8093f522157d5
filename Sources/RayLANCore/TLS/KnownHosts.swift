import Foundation

/// The certificates this machine has pinned, by server, as SSH's `known_hosts` keeps host keys: one line per
/// server, `HOST:PORT sha256:HEX`, in `$RAYLAN_HOME/known_hosts` (mode 0600). A pin is recorded when it is given
/// (`--fingerprint`) and when a certificate is trusted on first use; later connections need no flag, and a
/// server that presents another certificate is refused.
public struct KnownHosts: Sendable {
    /// The file.
    public let file: String

    public init(file: String = RayLANHome.path() + "/known_hosts") {
        self.file = file
    }

    /// `HOST:PORT` for `address`, IPv6 in brackets.
    static func key(_ address: ClusterAddress) -> String {
        (address.host.contains(":") ? "[\(address.host)]" : address.host) + ":\(address.port)"
    }

    /// The pins in the file, by server; lines that do not parse are skipped. A missing file holds none.
    public func entries() -> [String: CertificatePin] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [:] }
        var result: [String: CertificatePin] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, !fields[0].hasPrefix("#"),
                let pin = try? CertificatePin(parsing: String(fields[1]))
            else { continue }
            result[String(fields[0])] = pin
        }
        return result
    }

    /// The pin recorded for `address`'s server, if any.
    public func pin(for address: ClusterAddress) -> CertificatePin? {
        entries()[Self.key(address)]
    }

    /// Records `pin` for `address`'s server, replacing what was recorded for it.
    /// - Throws: ``ClusterError`` `knownHostsUnusable` when the file cannot be written.
    public func record(_ pin: CertificatePin, for address: ClusterAddress) throws {
        var entries = entries()
        guard entries[Self.key(address)] != pin else { return }
        entries[Self.key(address)] = pin
        let text = entries.keys.sorted().map { "\($0) \(entries[$0]!)\n" }.joined()
        do {
            try RayLANHome.makePrivateFolder((file as NSString).deletingLastPathComponent)
            try PrivateFile.write(Array(text.utf8), to: file)
        } catch {
            throw ClusterError(
                .knownHostsUnusable, "Cannot record the certificate of \(Self.key(address)) in \(file) (\(error))",
                remedy: "Check that RayLAN's home (\(RayLANHome.path())) is writable by this user.")
        }
    }
}
