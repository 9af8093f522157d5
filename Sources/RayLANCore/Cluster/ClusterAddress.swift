import Foundation

/// Where a Ray cluster's dashboard listens: the HTTP endpoint RayLAN talks to.
///
/// Accepted forms: `HOST`, `HOST:PORT`, `http://HOST[:PORT]`, `https://HOST[:PORT]`, and the seed's
/// `ray://HOST[:PORT]`. Without a port the dashboard's default, 8265, is used. `ray://` is Ray Client's
/// protocol (pickled gRPC on port 10001); RayLAN never uses it, so such an address is rewritten to the
/// dashboard URL on the same host and ``notes`` says so.
///
/// Without a scheme, a host on this machine's loopback is reached over plain HTTP (the embedded cluster) and
/// any other over TLS (`https`), as `raylan up --head` serves it: a token never crosses the LAN in clear unless
/// `http://` is written out. An `https` address is checked against its ``pin`` (the certificate's fingerprint,
/// `--fingerprint`), else the pin this machine recorded for it (``KnownHosts``), else the system's trust.
public struct ClusterAddress: Sendable, Hashable, CustomStringConvertible {
    /// The dashboard's default port.
    public static let defaultDashboardPort = 8265
    /// Ray Client's default port: where `ray://` addresses really point.
    public static let rayClientPort = 10001
    /// The GCS port that the seed wrongly combined with `ray://`.
    public static let gcsPort = 6379

    /// `http` or `https`.
    public var scheme: String
    /// The host name or IP address, without brackets for IPv6.
    public var host: String
    /// The dashboard port.
    public var port: Int
    /// The fingerprint of the certificate the server must present (`https` only); nil: the one recorded in
    /// ``KnownHosts``, else one the system trusts.
    public var pin: CertificatePin?
    /// What the parser changed or assumed, for the user to read (for example the `ray://` rewrite).
    public var notes: [String]

    /// Creates an address from its parts; with a `pin`, the scheme is `https`.
    public init(
        scheme: String = "http", host: String, port: Int = ClusterAddress.defaultDashboardPort,
        pin: CertificatePin? = nil
    ) {
        self.scheme = pin == nil ? scheme : "https"
        self.host = host
        self.port = port
        self.pin = pin
        self.notes = []
    }

    /// This address with `pin` (and so `https`).
    public func pinned(_ pin: CertificatePin) -> ClusterAddress {
        var copy = self
        copy.scheme = "https"
        copy.pin = pin
        return copy
    }

    /// Parses an address as given on the command line or in `RAYLAN_ADDRESS`.
    ///
    /// - Parameter text: the address, e.g. `192.168.1.130`, `gpu-box:8265`, `http://gpu-box:8265`,
    ///   or `ray://192.168.1.130:6379`.
    /// - Throws: ``ClusterError`` (`invalidAddress`) with the reason and an example of a valid form.
    public init(parsing text: String) throws {
        let input = text.trimmingCharacters(in: .whitespaces)
        guard !input.isEmpty else {
            throw ClusterError.invalidAddress(text, reason: "it is empty")
        }
        var rest = input
        var scheme: String?
        var isRayClient = false
        if let range = rest.range(of: "://") {
            let given = rest[..<range.lowerBound].lowercased()
            rest = String(rest[range.upperBound...])
            switch given {
            case "http", "https": scheme = given
            case "ray": isRayClient = true
            default:
                throw ClusterError.invalidAddress(
                    text, reason: "the scheme '\(given)://' is not supported (use http://, https:// or none)")
            }
        }
        // Drop a path, e.g. a trailing slash or "/#/overview" pasted from the browser.
        if let slash = rest.firstIndex(of: "/") { rest = String(rest[..<slash]) }
        if let at = rest.lastIndex(of: "@") { rest = String(rest[rest.index(after: at)...]) }

        var host: String
        var portText: String?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw ClusterError.invalidAddress(text, reason: "the IPv6 address has no closing ']'")
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                portText = String(after.dropFirst())
            } else if !after.isEmpty {
                throw ClusterError.invalidAddress(text, reason: "unexpected '\(after)' after the IPv6 address")
            }
        } else if rest.filter({ $0 == ":" }).count > 1 {
            host = rest  // a bare IPv6 address
        } else if let colon = rest.firstIndex(of: ":") {
            host = String(rest[..<colon])
            portText = String(rest[rest.index(after: colon)...])
        } else {
            host = rest
        }
        guard !host.isEmpty else {
            throw ClusterError.invalidAddress(text, reason: "the host is missing")
        }
        var port = Self.defaultDashboardPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw ClusterError.invalidAddress(
                    text, reason: "'\(portText)' is not a port number (1-65535)")
            }
            port = value
        }
        self.scheme = scheme ?? (Self.isLoopbackHost(host) ? "http" : "https")
        self.host = host
        self.port = port
        self.pin = nil
        self.notes = []
        if isRayClient {
            // The seed's form: ray://HOST:6379. Ray Client is pickled gRPC on 10001; 6379 is the GCS.
            self.port = Self.defaultDashboardPort
            var note =
                "'\(input)' is a Ray Client address (ray:// is Ray Client's gRPC protocol, port \(Self.rayClientPort))"
            if port == Self.gcsPort {
                note += "; port \(Self.gcsPort) is the GCS, not Ray Client"
            }
            note += ". RayLAN speaks HTTP to the Ray dashboard instead, using \(self.url.absoluteString)"
            self.notes.append(note)
        }
    }

    /// The dashboard's base URL, e.g. `http://192.168.1.130:8265`.
    public var url: URL {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return URL(string: "\(scheme)://\(hostPart):\(port)")!
    }

    public var description: String { url.absoluteString }

    /// Whether the host is this machine's loopback (`localhost`, an IPv4 literal `127.x.y.z`, `::1`): a cluster
    /// reached there is private to this machine.
    public var isLoopback: Bool { Self.isLoopbackHost(host) }

    /// Whether `host` names this machine's loopback: `localhost`, `::1` (also bracketed), or an IPv4 literal
    /// in 127.0.0.0/8. A name that merely starts with `127.` (`127.evil.example`) is not.
    public static func isLoopbackHost(_ host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            (1...3).contains(part.count) && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber)
                && Int(part).map { $0 <= 255 } == true
        }
    }
}
