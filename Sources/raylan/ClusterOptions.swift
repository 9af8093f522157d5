import ArgumentParser
import Foundation
import RayLAN

/// `--address`, `--token-file`: which cluster, and how to authenticate. Shared by every command.
struct ClusterOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The Ray dashboard: HOST, HOST:PORT, https://HOST:PORT or http://HOST:PORT (default port 8265; TLS beyond loopback).",
            discussion: "Precedence: --address > RAYLAN_ADDRESS > a private local Ray on this machine.",
            valueName: "address"))
    var address: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A file with the cluster's token (Ray token authentication).",
            discussion: "Precedence: --token-file > RAY_AUTH_TOKEN > RAY_AUTH_TOKEN_PATH > ~/.ray/auth_token.",
            valueName: "file"))
    var tokenFile: String?

    @OptionGroup var certificate: TrustOptions

    /// The address given by flag or environment, parsed, with the fingerprint given; nil means the embedded
    /// local cluster.
    func givenAddress() throws -> ClusterAddress? {
        let pin = try certificate.pin()
        guard let text = Self.addressText(address) else {
            // RAYLAN_FINGERPRINT alone is left for the addresses it belongs with; the flag alone is a mistake.
            if certificate.fingerprint != nil {
                throw ValidationError("--fingerprint pins a head's certificate: pass --address too.")
            }
            return nil
        }
        do {
            let address = try ClusterAddress(parsing: text)
            guard let pin else { return address }
            guard !text.lowercased().hasPrefix("http://") else {
                throw ValidationError(
                    "--fingerprint pins a TLS certificate, and \(text) is plain HTTP: write https://.")
            }
            return address.pinned(pin)
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        _ = try givenAddress()
        if let tokenFile, !FileManager.default.isReadableFile(atPath: tokenFile) {
            throw ValidationError(
                "Cannot read the token file '\(tokenFile)'. Pass the path of a file that holds the cluster's token.")
        }
    }

    /// `--address`, else `RAYLAN_ADDRESS`, as typed; nil means the embedded local cluster.
    static func addressText(_ flag: String?) -> String? {
        flag ?? ProcessInfo.processInfo.environment["RAYLAN_ADDRESS"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The embedded local Ray, started (and said so on stderr) when none answers.
    static func embedded() async throws -> (ray: LocalRay, started: Bool) {
        let embedded = EmbeddedCluster.fromEnvironment()
        return try await embedded.findOrStart(
            configuration: {
                try embedded.configuration(
                    environment: try RayEnvironment.locate(), serveGuard: try ClusterCode.locate().serveGuard)
            },
            willStart: { Terminal.error($0) })
    }

    /// Connects: to the given address, or to the embedded local Ray (started when none answers).
    /// Messages (the ray:// explanation, the start of a local Ray) go to stderr.
    func connect() async throws -> Connection {
        let token = try AuthToken.resolve(tokenFile: tokenFile)
        if let address = try givenAddress() {
            for note in address.notes { Terminal.error("Note: \(note).") }
            return Connection(
                cluster: RayCluster(address: address, configuration: .init(token: token, trust: certificate.trust)),
                local: nil,
                startedLocal: false)
        }
        let (ray, started) = try await Self.embedded()
        let cluster = RayCluster(address: ray.address, configuration: .init(token: try ray.token()))
        return Connection(cluster: cluster, local: ray, startedLocal: started)
    }
}

/// An open connection; ``close()`` shuts it down and says when a local Ray was left running.
struct Connection {
    let cluster: RayCluster
    /// The embedded local Ray, when no address was given.
    let local: LocalRay?
    /// Whether this command started it.
    let startedLocal: Bool

    /// The Serve proxy port to use when Serve is not running yet: the embedded cluster's reserved port,
    /// else Serve's default.
    var defaultServePort: Int { local?.ports.serve ?? 8000 }

    func close() async {
        try? await cluster.shutdown()
        if startedLocal, let ray = local {
            Terminal.error("The local Ray keeps running at \(ray.address); stop it with 'raylan down'.")
        }
    }

    /// Runs `body` with the cluster and closes the connection afterwards, also on error.
    static func with(_ options: ClusterOptions, _ body: (RayCluster) async throws -> Void) async throws {
        try await with(options) { (connection: Connection) in try await body(connection.cluster) }
    }

    /// Runs `body` with the connection and closes it afterwards, also on error.
    static func with(_ options: ClusterOptions, _ body: (Connection) async throws -> Void) async throws {
        let connection = try await options.connect()
        do {
            try await body(connection)
            await connection.close()
        } catch {
            await connection.close()
            throw error
        }
    }
}
