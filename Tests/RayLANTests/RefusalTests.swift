import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// Refusals that must come before anything is written on the cluster, against a fake dashboard that answers
/// a planned Serve status (nothing here is Ray): what is judged, and that no write request followed.
@Suite("Refusals before anything is written (a fake dashboard)")
struct RefusalTests {
    static func json(_ body: String) -> FakeHTTPServer.Answer {
        FakeHTTPServer.Answer(status: 200, headers: ["Content-Type": "application/json"], body: body)
    }

    static let noApplications = json(#"{"applications": {}}"#)
    static let tokenMode = json(#"{"authentication_mode": "token"}"#)

    @Test(
        "On a cluster that requires the token, a key of one's own (--key-file) or none (--public) is refused as a usage error, and Serve's config is not written"
    )
    func accessRefusedOnTokenCluster() async throws {
        // Each try reads Serve's status, then the authentication mode.
        let plan = [Self.noApplications, Self.tokenMode, Self.noApplications, Self.tokenMode]
        try await FakeHTTPServer.with(plan) { server in
            let token = AuthToken(value: String(repeating: "t", count: 64), source: .inline("test"))
            try await RayCluster.withConnection(
                to: server.address, configuration: RayCluster.Configuration(token: token)
            ) { cluster in
                for (access, named) in [(ServiceAccess.givenKey(.generate()), "--key-file"), (.open, "--public")] {
                    let error = await #expect(throws: ServeError.self) {
                        try await cluster.writeApplication("svc", access: access, httpPort: 8000, httpHost: nil) {
                            _ in .object([:])
                        }
                    }
                    #expect(error?.code == .accessRefused, "\(String(describing: error))")
                    #expect(error?.isUsageError == true)
                    #expect(error?.description.contains(named) == true, "\(String(describing: error))")
                }
            }
            let requests = server.requests
            #expect(
                requests.map(\.method) == ["GET", "GET", "GET", "GET"], "\(requests.map { "\($0.method) \($0.path)" })")
        }
    }

    @Test(
        "A gateway without a key is refused on a loopback dashboard whose Serve proxy listens on every address, after one read and before any upload"
    )
    func openGatewayRefusedAtDeploy() async throws {
        let everyAddress = Self.json(
            #"{"applications": {}, "http_options": {"host": "0.0.0.0", "port": 8000}, "proxies": {"n1": {"node_ip": "127.0.0.1", "status": "HEALTHY"}}}"#
        )
        try await FakeHTTPServer.with([everyAddress]) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                let error = await #expect(throws: GatewayError.self) {
                    try await cluster.deployGateway(GatewayDeployment(access: .open))
                }
                #expect(error?.code == .openRefused, "\(String(describing: error))")
                #expect(error?.description.contains("0.0.0.0") == true, "\(String(describing: error))")
            }
            #expect(server.requests.map(\.path) == ["/api/serve/applications/"])
        }
    }

    @Test("The gateway's own remedy reaches the Swift error; without one, the built-in remedy for its code")
    func gatewayRemedyTravels() throws {
        func decoded(_ json: String) throws -> GatewayError {
            try JSONDecoder().decode(GatewayError.Wire.self, from: Data(json.utf8)).error
        }
        let full = try decoded(#"{"code": "store_full", "message": "m", "remedy": "free something first"}"#)
        #expect(full.code == .storeFull && full.remedy == "free something first", "\(full)")
        #expect(full.description.contains("free something first"))
        let missing = try decoded(#"{"code": "missing_module", "message": "m"}"#)
        #expect(missing.remedy?.contains("--working-dir") == true, "\(missing)")
    }
}
