import Foundation
import RayLAN

extension Benchmark {
    /// What the TLS variant is called in the report.
    static let overTLS = "over TLS (a TLS front in this process, pinned)"

    /// Runs `body` with `endpoint` as reached through a TLS front in this process: a new identity in a temporary
    /// folder, a front on 127.0.0.1 relaying to the endpoint's proxy, and the endpoint pinned to it. The same path a
    /// head's front adds (a TLS handshake per connection, encryption both ways, one more hop on the host), so that
    /// one run measures the detection path over plain HTTP and over TLS. The front stops, and its folder is removed,
    /// when `body` returns.
    static func throughTLSFront<Result: Sendable>(
        to endpoint: ServeEndpoint, _ body: (ServeEndpoint) async throws -> Result
    ) async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "raylan-bench-tls-\(randomHex(bytes: 4))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let identity = try HeadIdentity.loadOrCreate(in: folder.path)
        let front = TLSFront(
            routes: [.init(listenHost: "127.0.0.1", port: 0, upstreamHost: endpoint.host, upstreamPort: endpoint.port)],
            certificateFile: identity.certificateFile, keyFile: identity.keyFile)
        return try await front.whileRunning { ports in
            var sealed = endpoint
            sealed.scheme = "https"
            sealed.host = "127.0.0.1"
            sealed.port = ports[0]
            sealed.pin = identity.pin
            return try await body(sealed)
        }
    }
}
