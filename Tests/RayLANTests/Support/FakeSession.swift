import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// A session actor (``ClusterSession``) played by a ``FakeHTTPServer`` in the gateway's place: each of the
/// session's calls is one `POST /actors/<id>/call`, answered from the plan in order and recorded (the method is in
/// the request's body). Nothing here is Ray: what is tested is what the client does with the answers.
enum FakeSession {
    /// The gateway's answer to a call that finished with `value`.
    static func value(_ value: JSONValue) throws -> FakeHTTPServer.Answer {
        let body = try JSONEncoder().encode(JSONValue.object(["state": .string("finished"), "value": value]))
        return FakeHTTPServer.Answer(
            status: 200, headers: ["Content-Type": "application/json"], body: String(decoding: body, as: UTF8.self))
    }

    /// The answer to `outputs()`: these files (name, bytes), as the session lists them.
    static func outputs(_ files: [(name: String, bytes: Int)]) throws -> FakeHTTPServer.Answer {
        try value(
            .array(files.map { .object(["name": .string($0.name), "bytes": .number(Double($0.bytes))]) }))
    }

    /// The gateway's answer to a call that returned bytes (`read(name, offset, size)`).
    static func bytes(_ text: String) -> FakeHTTPServer.Answer {
        FakeHTTPServer.Answer(status: 200, headers: ["Content-Type": "application/octet-stream"], body: text)
    }

    /// An answer that sends its head and `text`, promises more, and then stalls.
    static func stalledBytes(_ text: String) -> FakeHTTPServer.Answer {
        FakeHTTPServer.Answer(
            status: 200, headers: ["Content-Type": "application/octet-stream"], body: text, contentLength: 1000,
            stall: true)
    }

    /// The session methods called so far, in order (`outputs`, `read`, …).
    static func methods(_ server: FakeHTTPServer) -> [String] {
        server.requests.map { request in
            let body = try? JSONDecoder().decode(JSONValue.self, from: Data(request.body.utf8))
            return body?["method"]?.stringValue ?? "\(request.method) \(request.path)"
        }
    }

    /// Starts the fake with `plan` and runs `body` with a session whose actor it plays.
    static func with<R: Sendable>(
        _ plan: [FakeHTTPServer.Answer], configuration: RayCluster.Configuration = RayCluster.Configuration(),
        _ body: (ClusterSession, FakeHTTPServer) async throws -> R
    ) async throws -> R {
        try await FakeHTTPServer.with(plan) { server in
            try await RayCluster.withConnection(to: server.address, configuration: configuration) { cluster in
                let endpoint = ServeEndpoint(address: server.address, port: server.port, routePrefix: "/raylan-gateway")
                let info = try JSONDecoder().decode(
                    ActorInfo.self,
                    from: Data(
                        #"{"id": "fake-session", "class": "raylan_detect.dataset:DatasetSession", "state": "alive", "created": 0}"#
                            .utf8))
                let actor = RemoteActor(gateway: Gateway(cluster: cluster, endpoint: endpoint), info: info)
                return try await body(ClusterSession(actor: actor), server)
            }
        }
    }
}
