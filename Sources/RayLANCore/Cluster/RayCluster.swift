import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A connection to a Ray cluster's dashboard: the HTTP endpoint for Jobs, packages, Serve and state.
///
/// RayLAN speaks only Ray's public HTTP interfaces; it never uses Ray Client (`ray://`).
/// Create one with ``withConnection(to:configuration:logger:_:)`` so that it is shut down, or call
/// ``shutdown()`` yourself.
///
/// ```swift
/// try await RayCluster.withConnection(to: ClusterAddress(parsing: "192.168.1.130")) { cluster in
///     let info = try await cluster.serverInfo()
///     print(info.rayVersion)
/// }
/// ```
public final class RayCluster: Sendable {
    /// The dashboard address.
    public let address: ClusterAddress
    /// The connection settings.
    public let configuration: Configuration
    package let logger: Logger
    let http: HTTPClient
    private let cachedInfo = LockedBox<ServerInfo?>(nil)
    /// One turn-taker per server: at most ``Configuration/requestsInFlightPerServer`` requests on the wire to it.
    private let inFlight = LockedBox<[ClusterAddress: InFlightLimit]>([:])
    private let requestsInFlightPerServer: Int
    /// RayLAN's cluster code as this connection uploaded it, by code folder and model file
    /// (``stageCode(_:model:progress:)``).
    let stagedCode = LockedBox<[StagedCode.Key: (stamp: [String], code: StagedCode)]>([:])
    /// How many times this connection staged (copied, zipped and hashed) RayLAN's cluster code.
    let stagings = LockedBox(0)
    /// The TLS settings that pin each `https` host's certificate, once checked (``tlsConfiguration(for:)``).
    let trusted = LockedBox<[String: Task<TrustedServer, any Error>]>([:])

    /// Creates a connection. No network traffic happens until the first request.
    ///
    /// - Warning: Call ``shutdown()`` when done, or use ``withConnection(to:configuration:logger:_:)``.
    public init(address: ClusterAddress, configuration: Configuration = Configuration(), logger: Logger? = nil) {
        self.address = address
        self.configuration = configuration
        self.logger = logger ?? Logger(label: "raylan", factory: { _ in SwiftLogNoOpLogHandler() })
        self.requestsInFlightPerServer = max(1, configuration.requestsInFlightPerServer)
        var httpConfiguration = HTTPClient.Configuration()
        // The read timeout is AsyncHTTPClient's idle timer: started when the request is sent, restarted by
        // every part of the answer (head and each body chunk), so it also ends a body that stalls midway. The
        // write timeout is its twin for a request body the server stops taking (an upload).
        let idle = TimeAmount(configuration.timeouts.read)
        httpConfiguration.timeout = .init(connect: .init(configuration.timeouts.connect), read: idle, write: idle)
        httpConfiguration.redirectConfiguration = .disallow
        // Detection keeps many requests in flight to one Serve proxy; AsyncHTTPClient's default of 8
        // connections per host would queue the rest, and fail them once they waited for the connect timeout
        // (3 s), however long their own timeout. RayLAN's own turn-taking (`execute`) keeps the requests to one
        // server within this limit, so a request never waits in AsyncHTTPClient's queue.
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = requestsInFlightPerServer
        // A refused connection is an answer (nothing listens there), given at once: AsyncHTTPClient would
        // otherwise try again until the connect timeout and only then fail. RayLAN's callers decide what to
        // retry (``DetectionClient/RetryPolicy``, the waits for a starting cluster).
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
    }

    /// Opens a connection, runs `body`, and shuts the connection down, also when `body` throws.
    public static func withConnection<Result: Sendable>(
        to address: ClusterAddress, configuration: Configuration = Configuration(), logger: Logger? = nil,
        _ body: (RayCluster) async throws -> Result
    ) async throws -> Result {
        let cluster = RayCluster(address: address, configuration: configuration, logger: logger)
        do {
            let result = try await body(cluster)
            try await cluster.shutdown()
            return result
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    /// Closes the HTTP connections.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: Handshake

    /// The version handshake: `GET /api/version` and `GET /api/v0/cluster_metadata`.
    ///
    /// The answer is cached; request builders use it to send only fields the server's Ray knows.
    /// - Throws: ``ClusterError`` when the cluster cannot be reached, refuses the token, or runs a Ray older
    ///   than ``RayVersion/oldestSupported``.
    public func serverInfo() async throws -> ServerInfo {
        if let info = cachedInfo.withLock({ $0 }) { return info }
        struct Version: Decodable {
            var version: String?
            var ray_version: String
            var ray_commit: String?
            var session_name: String?
        }
        struct Metadata: Decodable {
            struct DataPart: Decodable {
                var rayVersion: String?
                var pythonVersion: String?
            }
            var data: DataPart?
        }
        let version: Version = try await getJSON("/api/version", what: "GET /api/version")
        guard let rayVersion = RayVersion(version.ray_version) else {
            throw ClusterError.invalidResponse("GET /api/version", body: version.ray_version, underlying: nil)
        }
        guard rayVersion.isSupported else {
            throw ClusterError(
                .unsupportedVersion,
                "The cluster at \(address.host):\(address.port) runs Ray \(rayVersion); RayLAN supports \(RayVersion.supportedRange)",
                remedy:
                    "Upgrade Ray on every node, e.g. 'pip install \"ray[default,serve]==\(RayVersion.newestTested)\"'.")
        }
        if rayVersion.isNewerThanTested {
            logger.warning("Ray \(rayVersion) is newer than RayLAN was tested with (\(RayVersion.supportedRange)).")
        }
        let metadata: Metadata? = try? await getJSON("/api/v0/cluster_metadata", what: "GET /api/v0/cluster_metadata")
        let info = ServerInfo(
            dashboardURL: address.url.absoluteString, rayVersion: rayVersion, rayCommit: version.ray_commit,
            pythonVersion: metadata?.data?.pythonVersion, sessionName: version.session_name, apiVersion: version.version
        )
        cachedInfo.withLock { $0 = info }
        return info
    }

    // MARK: HTTP

    /// A response: status, the whole body and the headers.
    package struct Response: Sendable {
        package var status: Int
        package var body: Data
        package var headers = HTTPHeaders()
        package var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends one request to the dashboard and returns status and body. Maps connection failures (a body that
    /// stalls for ``Configuration/Timeouts/read`` included) to `unreachable`, an answer over `maxResponseBytes`
    /// to `responseTooLarge`, and 401/403 to `unauthorized`/`forbidden`; every other status is the caller's.
    package func send(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json",
        timeout: Duration? = nil, maxResponseBytes: Int = 64 << 20
    ) async throws -> Response {
        try await execute(
            method, url: address.url.absoluteString + path, server: .dashboard, key: nil, body: body,
            contentType: contentType,
            timeout: timeout, maxResponseBytes: maxResponseBytes)
    }

    /// Sends one request to Serve's proxy at `endpoint` (`path` under its route prefix) and returns status and
    /// body. Connection failures become `unreachable` naming the Serve proxy; the dashboard's token is not
    /// sent (the proxy is a different server), and every status is the caller's to judge.
    package func send(
        _ method: HTTPMethod, to endpoint: ServeEndpoint, _ path: String, body: Data? = nil,
        contentType: String = "application/json", timeout: Duration? = nil, maxResponseBytes: Int = 64 << 20
    ) async throws -> Response {
        try await execute(
            method, url: endpoint.url(path), server: .serveProxy(endpoint.address), key: endpoint.key, body: body,
            contentType: contentType, timeout: timeout, maxResponseBytes: maxResponseBytes)
    }

    /// Which of the cluster's HTTP servers a request goes to.
    enum Server {
        case dashboard
        case serveProxy(ClusterAddress)
    }

    private func execute(
        _ method: HTTPMethod, url: String, server: Server, key: ServiceKey?, body: Data?, contentType: String,
        timeout: Duration?,
        maxResponseBytes: Int
    ) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "User-Agent", value: configuration.userAgent)
        request.headers.add(name: "Accept", value: "application/json")
        // Each server gets its own credential only: the dashboard's token never goes to Serve's proxy, and an
        // application's service key never to the dashboard.
        switch server {
        case .dashboard:
            if let token = configuration.token {
                request.headers.add(name: "Authorization", value: "Bearer \(token.value)")
            }
        case .serveProxy:
            if let key { request.headers.add(name: "Authorization", value: "Bearer \(key.value)") }
        }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let limit = timeout ?? configuration.timeouts.request
        // The request's time starts now and includes any wait for its turn: a turn ends when its answer's
        // body is read, as the connection is busy until then.
        let deadline = NIODeadline.now() + TimeAmount(limit)
        let serverAddress: ClusterAddress
        switch server {
        case .dashboard: serverAddress = address
        case .serveProxy(let proxy): serverAddress = proxy
        }
        // Before anything is sent: the server's certificate is checked against its pin (one handshake, no request).
        if serverAddress.scheme == "https" {
            request.tlsConfiguration = try await tlsConfiguration(for: serverAddress)
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            (response, bytes) = try await turns(for: serverAddress).withTurn {
                let response = try await http.execute(request, deadline: deadline)
                return (response, try await response.body.collect(upTo: maxResponseBytes))
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch is NIOTooManyBytesError {
            // Thrown by `collect(upTo:)`, from the Content-Length before any byte is read or once the bytes
            // pass the limit. The server did answer: retrying would only fetch (or compute) it again.
            throw ClusterError.responseTooLarge("\(method) \(url)", limit: maxResponseBytes)
        } catch {
            let reason = ConnectionFailure(error).reason(timeout: limit, read: configuration.timeouts.read)
            switch server {
            case .dashboard: throw ClusterError.unreachable(address, reason: reason, underlying: error)
            case .serveProxy(let proxy):
                throw ClusterError.serveProxyUnreachable(proxy, reason: reason, underlying: error)
            }
        }
        let result = Response(
            status: Int(response.status.code), body: Data(bytes.readableBytesView), headers: response.headers)
        logger.debug("\(method) \(url) -> \(result.status)")
        guard case .dashboard = server else { return result }
        switch result.status {
        case 401: throw ClusterError.unauthorized(address, body: result.text)
        case 403: throw ClusterError.forbidden(address, tokenSource: configuration.token?.source, body: result.text)
        default: return result
        }
    }

    /// The turn-taker for requests to `server`.
    func turns(for server: ClusterAddress) -> InFlightLimit {
        inFlight.withLock { limits in
            if let limit = limits[server] { return limit }
            let limit = InFlightLimit(requestsInFlightPerServer)
            limits[server] = limit
            return limit
        }
    }

    /// Sends a request again, `pause` apart, while Ray's answer is one that passes by itself (`passing`: an
    /// agent or a proxy still starting), for at most `tries` requests and until `within` has passed; returns the
    /// last answer and how many requests it took. The caller judges that answer, a passing one included.
    func resend(
        every pause: Duration, tries: Int = .max, within limit: Duration = .seconds(86_400),
        while passing: (Response) -> Bool, _ request: () async throws -> Response
    ) async throws -> (response: Response, tries: Int) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        var attempt = 1
        while true {
            let response = try await request()
            guard passing(response), attempt < tries, clock.now < deadline else { return (response, attempt) }
            try await Task.sleep(for: pause)
            attempt += 1
        }
    }

    /// GETs `path` and decodes a 200 answer.
    func getJSON<T: Decodable>(_ path: String, what: String) async throws -> T {
        let response = try await send(.GET, path)
        guard response.status == 200 else {
            throw ClusterError.server(what, status: response.status, body: response.text)
        }
        return try decode(T.self, from: response, what: what)
    }

    func decode<T: Decodable>(_ type: T.Type, from response: Response, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            throw ClusterError.invalidResponse(what, body: response.text, underlying: error)
        }
    }

}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
