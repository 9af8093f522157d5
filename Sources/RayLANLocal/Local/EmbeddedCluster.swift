#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore

/// RayLAN's default when no address is given: one private local Ray per user, recorded in a state file
/// (`$RAYLAN_HOME/local-cluster.json`, default `~/.raylan`), started when none answers and left running
/// until ``stop()`` (`raylan down`).
public struct EmbeddedCluster: Sendable {
    /// Where the state file and lock live.
    public var stateDirectory: String

    public init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    /// `$RAYLAN_HOME`, else `~/.raylan`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> EmbeddedCluster
    {
        EmbeddedCluster(stateDirectory: RayLANHome.path(environment))
    }

    var stateFile: String { stateDirectory + "/local-cluster.json" }

    /// The embedded cluster's token file: made once with a new random token, mode 0600.
    public var tokenFile: String { stateDirectory + "/local-token" }

    /// The embedded cluster's settings: private (every listener on loopback, see
    /// ``LocalRayConfiguration/isPrivate``) and with Ray's token authentication (Ray 2.52+), its token read
    /// from ``tokenFile`` or made there once. The user takes no step: RayLAN's commands read the token again
    /// from the record's source; with `serveGuard`, Serve's proxy refuses requests without a service key.
    /// Other settings keep ``LocalRayConfiguration``'s defaults.
    ///
    /// - Throws: ``ClusterError`` (`tokenUnwritable`, `tokenUnreadable`) when the token file cannot be made
    ///   or read.
    /// - Parameter serveGuard: the Serve proxy guard to install (``LocalRayConfiguration/serveGuard``).
    public func configuration(environment: RayEnvironment, serveGuard: String?) throws -> LocalRayConfiguration {
        try makeStateDirectory()
        return LocalRayConfiguration(
            environment: environment, authToken: try AuthToken.loadOrCreate(at: tokenFile), serveGuard: serveGuard)
    }

    /// Makes the state folder, mode 0700 (it holds the token and the cluster's record), and takes that mode
    /// away from others where the folder existed with a wider one.
    func makeStateDirectory() throws {
        try RayLANHome.makePrivateFolder(stateDirectory)
    }

    /// The recorded cluster, whether or not it still runs.
    public func recorded() -> LocalRay? {
        guard let data = FileManager.default.contents(atPath: stateFile) else { return nil }
        return try? JSONDecoder().decode(LocalRay.self, from: data)
    }

    /// The recorded cluster if it answers; otherwise starts one with `configuration()` and records it.
    ///
    /// A record that is not proven to be RayLAN's running Ray (see ``LocalRay``; e.g. after a restart, when
    /// its pid names another process) is removed, and nothing is signalled or deleted for it. A proven one
    /// that does not answer is stopped before a new one starts.
    ///
    /// - Parameter willStart: called with a line for the user: a stale record removed (``StaleRecord``), and
    ///   just before starting.
    /// - Returns: the cluster and whether it was started now.
    public func findOrStart(
        configuration: () throws -> LocalRayConfiguration, willStart: (String) -> Void = { _ in }
    ) async throws -> (ray: LocalRay, started: Bool) {
        try makeStateDirectory()
        let lock = try FileLock(path: stateDirectory + "/lock")
        defer { lock.unlock() }
        if let ray = recorded() {
            if var stale = ray.staleness() {
                try? FileManager.default.removeItem(atPath: stateFile)
                stale.file = stateFile
                willStart(stale.description)
            } else if await Self.answers(ray) {
                return (ray, false)
            } else if var stale = await ray.stop() {  // a half-dead leftover: end it before starting anew
                stale.file = stateFile
                willStart(stale.description)
            }
        }
        let configuration = try configuration()
        willStart("Starting a private local Ray (\(configuration.environment.rayExecutable))…")
        let ray = try await LocalRay.start(configuration)
        let data = try JSONEncoder().encode(ray)
        _ = FileManager.default.createFile(atPath: stateFile, contents: data, attributes: [.posixPermissions: 0o600])
        return (ray, true)
    }

    /// Stops the recorded cluster, when it is proven to be RayLAN's running Ray (see ``LocalRay``), and
    /// forgets it.
    ///
    /// - Returns: the recorded cluster and, when its record was stale (then nothing was signalled or
    ///   deleted), why; nil when none was recorded.
    @discardableResult
    public func stop() async throws -> (ray: LocalRay, stale: StaleRecord?)? {
        guard FileManager.default.fileExists(atPath: stateDirectory) else { return nil }
        let lock = try FileLock(path: stateDirectory + "/lock")
        defer { lock.unlock() }
        guard let ray = recorded() else { return nil }
        var stale = await ray.stop()
        try? FileManager.default.removeItem(atPath: stateFile)
        stale?.file = stateFile
        return (ray, stale)
    }

    /// Whether the recorded cluster answers, asked with the token it was started with (read again from
    /// its recorded source). A token handed over in code (``AuthToken/Source/inline(_:)``) cannot be read
    /// again: such a cluster never answers here and is started anew, so give the embedded cluster a token
    /// from a file or an environment variable.
    static func answers(_ ray: LocalRay) async -> Bool {
        let token = ray.tokenSource.flatMap { try? AuthToken.load(from: $0) }
        if ray.usesToken && token == nil { return false }
        let configuration = RayCluster.Configuration(
            token: token, timeouts: .init(connect: .seconds(1), request: .seconds(5)))
        return
            (try? await RayCluster.withConnection(to: ray.address, configuration: configuration) { cluster in
                await cluster.isReady()
            }) ?? false
    }
}

/// An exclusive `flock` on a file, so two RayLAN commands never start two embedded clusters.
struct FileLock {
    let descriptor: Int32

    init(path: String) throws {
        descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LocalRayError(
                .stateUnavailable, "Cannot open the lock file \(path): \(String(cString: strerror(errno)))",
                remedy: "Check the permissions of its folder (RAYLAN_HOME).")
        }
        flock(descriptor, LOCK_EX)
    }

    func unlock() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
