import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

extension RayCluster {
    /// How requests to one `https` host are secured.
    enum TrustedServer: Sendable {
        /// Only the certificate with this pin (the TLS settings trust it alone, whatever the host name).
        case pinned(CertificatePin, TLSConfiguration)
        /// The system's trust store and the host name, as for any web site.
        case system
    }

    /// The TLS settings for requests to `server`, checked once per server and connection.
    ///
    /// The dashboard's host decides for every port on it (Serve's proxy sits behind the same TLS front, with the
    /// same certificate): the certificate is pinned by the address's ``ClusterAddress/pin``, else by the pin
    /// ``Configuration/Trust/knownHosts`` holds for the dashboard, else trusted by the system, else (with
    /// ``Configuration/Trust/onFirstUse``) pinned as first seen and recorded. One TLS handshake, and no request,
    /// tells which; a pin given or first trusted is recorded.
    ///
    /// - Returns: nil for the system's default settings.
    /// - Throws: ``ClusterError``: `certificateMismatch` or `certificateUnknown` (nothing was sent),
    ///   `notTLS`, `unreachable`, `knownHostsUnusable`.
    package func tlsConfiguration(for server: ClusterAddress) async throws -> TLSConfiguration? {
        let deciding = decider(for: server)
        let key = KnownHosts.key(deciding)
        // One decision per server, however many requests start at once; a failed one is tried again later.
        let decision = trusted.withLock { decisions in
            if let decision = decisions[key] { return decision }
            let decision = Task { try await decideTrust(for: deciding) }
            decisions[key] = decision
            return decision
        }
        do {
            return try await decision.value.configuration
        } catch {
            trusted.withLock { decisions in
                if decisions[key] == decision { decisions[key] = nil }
            }
            throw error
        }
    }

    /// Whose certificate decides for `server`: the dashboard's, for a server on the dashboard's `https` host
    /// without a pin of its own (Serve's proxy behind the same front); else the server's own.
    func decider(for server: ClusterAddress) -> ClusterAddress {
        server.pin == nil && server.host == address.host && address.scheme == "https" ? address : server
    }

    /// The pin this connection holds for `server`'s certificate, once a request over TLS checked it; nil before,
    /// over plain HTTP, or for a certificate the system trusts.
    public func pin(for server: ClusterAddress) async -> CertificatePin? {
        let key = KnownHosts.key(decider(for: server))
        guard let decision = trusted.withLock({ $0[key] }), case .success(.pinned(let pin, _)) = await decision.result
        else { return nil }
        return pin
    }

    private func decideTrust(for server: ClusterAddress) async throws -> TrustedServer {
        let trust = configuration.trust
        let recorded = trust.knownHosts?.pin(for: server)
        let connect = configuration.timeouts.connect
        let timeout = max(connect, .seconds(5))
        if let expected = server.pin ?? recorded {
            let leaf = try await probe(server, timeout: timeout) { CertificatePin(of: $0) == expected }
            guard let leaf, CertificatePin(of: leaf) == expected else {
                throw ClusterError.certificateMismatch(
                    server, presented: leaf.flatMap(CertificatePin.init(of:)), expected: expected,
                    recorded: server.pin == nil ? trust.knownHosts?.file : nil)
            }
            if server.pin != nil { try trust.knownHosts?.record(expected, for: server) }
            return .pinned(expected, Self.pinning(leaf))
        }
        // Nothing pinned: a certificate the system trusts for this host is enough.
        do {
            _ = try await TLSProbe.handshake(
                host: server.host, port: server.port, connectTimeout: connect, timeout: timeout, decide: nil)
            return .system
        } catch {
            if case .connect(let cause) = error { throw unreachable(server, cause, timeout: timeout) }
            // Otherwise the handshake is tried again below, to see the certificate.
        }
        let onFirstUse = trust.onFirstUse
        let leaf = try await probe(server, timeout: timeout) { _ in onFirstUse }
        guard let leaf, let pin = CertificatePin(of: leaf) else {
            throw ClusterError.notTLS(server, reason: "it presented no certificate")
        }
        guard onFirstUse else { throw ClusterError.certificateUnknown(server, presented: pin) }
        try trust.knownHosts?.record(pin, for: server)
        logger.notice("Trusted \(server.host):\(server.port) on first use: \(pin)")
        return .pinned(pin, Self.pinning(leaf))
    }

    /// One handshake with `decide`; a refused certificate still returns it (the caller names the mismatch).
    private func probe(
        _ server: ClusterAddress, timeout: Duration, decide: @escaping @Sendable (NIOSSLCertificate) -> Bool
    ) async throws -> NIOSSLCertificate? {
        let seen = LockedBox<NIOSSLCertificate?>(nil)
        do {
            return try await TLSProbe.handshake(
                host: server.host, port: server.port, connectTimeout: configuration.timeouts.connect, timeout: timeout
            ) { leaf in
                seen.withLock { $0 = leaf }
                return decide(leaf)
            }
        } catch {
            switch error {
            case .refused: return seen.withLock { $0 }
            case .connect(let cause): throw unreachable(server, cause, timeout: configuration.timeouts.connect)
            case .timedOut:
                throw ClusterError.notTLS(server, reason: "no TLS handshake within \(timeout)")
            case .closed(let cause):
                throw ClusterError.unreachable(
                    server, reason: "it closed the connection during the TLS handshake", underlying: cause)
            case .handshake(let cause):
                throw ClusterError.notTLS(server, reason: "the TLS handshake failed: \(cause)")
            }
        }
    }

    private func unreachable(_ server: ClusterAddress, _ cause: any Error, timeout: Duration) -> ClusterError {
        let reason = ConnectionFailure(cause).reason(timeout: timeout, read: configuration.timeouts.read)
        return ClusterError.unreachable(server, reason: reason, underlying: cause)
    }

    /// TLS settings that trust `leaf` alone: as the only trust root, with no host name check (the pin names the
    /// server, whatever address reaches it). A server must hold the certificate's key to pass.
    static func pinning(_ leaf: NIOSSLCertificate) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates([leaf])
        configuration.certificateVerification = .noHostnameVerification
        return configuration
    }
}

extension RayCluster.TrustedServer {
    var configuration: TLSConfiguration? {
        switch self {
        case .pinned(_, let configuration): configuration
        case .system: nil
        }
    }
}

extension CertificatePin {
    /// The fingerprint of `certificate`; nil when it cannot be encoded.
    package init?(of certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes() else { return nil }
        self.init(certificateDER: der)
    }
}

extension ClusterError {
    static func certificateMismatch(
        _ server: ClusterAddress, presented: CertificatePin?, expected: CertificatePin, recorded: String?
    ) -> ClusterError {
        let source = recorded.map { "the one recorded in \($0) at the first connection" } ?? "the pinned one"
        return ClusterError(
            .certificateMismatch,
            "The server at \(server.host):\(server.port) presents the certificate \(presented.map(String.init(describing:)) ?? "(none)"), not \(source) (\(expected)): the head's identity changed, or someone is in the middle; nothing was sent",
            remedy: recorded == nil
                ? "Check the fingerprint 'raylan up --head' printed on the head, and pass that one with --fingerprint."
                : "If the head was set up anew, pass its new fingerprint (printed by 'raylan up --head') with --fingerprint; otherwise do not connect."
        )
    }

    static func certificateUnknown(_ server: ClusterAddress, presented: CertificatePin) -> ClusterError {
        ClusterError(
            .certificateUnknown,
            "The server at \(server.host):\(server.port) presents a certificate this machine does not know (\(presented)); nothing was sent",
            remedy:
                "Pass --fingerprint with the fingerprint 'raylan up --head' printed on the head (compare it with this one), or --trust-on-first-use to accept and record this certificate."
        )
    }

    static func notTLS(_ server: ClusterAddress, reason: String) -> ClusterError {
        ClusterError(
            .notTLS, "The server at \(server.host):\(server.port) does not speak TLS (\(reason))",
            remedy:
                "A head started by 'raylan up --head' serves TLS. For a Ray you started yourself on plain HTTP, write the address as http://\(server.host):\(server.port): its token then crosses the LAN in clear."
        )
    }
}
