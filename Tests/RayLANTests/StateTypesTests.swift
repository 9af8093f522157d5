import Foundation
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// Serve, node and authentication states are open structs: Ray's strings in and out, unknown ones kept.
@Suite("Open state types")
struct StateTypesTests {
    static let serveJSON = #"""
        {"applications": {"app": {"name": "app", "route_prefix": "/app", "status": "RUNNING",
          "deployments": {"D": {"name": "D", "status": "HEALTHY"}, "E": {"name": "E", "status": "WARMING_UP"}}},
         "new": {"name": "new", "status": "HIBERNATING"}},
         "proxies": {"n1": {"node_ip": "10.0.0.1", "status": "HEALTHY"},
                     "n2": {"node_ip": "10.0.0.2", "status": "DRAINING"}}}
        """#

    @Test("Serve's statuses decode to their known values, and unknown ones decode as they are")
    func serveStatuses() throws {
        let status = try JSONDecoder().decode(ServeStatus.self, from: Data(Self.serveJSON.utf8))
        let app = try #require(status.applications["app"])
        #expect(app.status == .running)
        #expect(app.deployments?["D"]?.status == .healthy)
        #expect(app.deployments?["E"]?.status == ServeStatus.DeploymentStatus(rawValue: "WARMING_UP"))
        #expect(status.applications["new"]?.status.rawValue == "HIBERNATING")
        #expect(status.applications["new"]?.status != .running)
        #expect(status.proxies?["n1"]?.status == .healthy)
        #expect(status.proxies?["n2"]?.status == .draining)
        #expect("\(app.status)" == "RUNNING")
    }

    @Test("Serve's status encodes the same strings it decoded")
    func serveRoundTrip() throws {
        let status = try JSONDecoder().decode(ServeStatus.self, from: Data(Self.serveJSON.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(status)) as? [String: Any])
        let applications = try #require(object["applications"] as? [String: [String: Any]])
        #expect(applications["app"]?["status"] as? String == "RUNNING")
        #expect(applications["new"]?["status"] as? String == "HIBERNATING")
        let deployments = try #require(applications["app"]?["deployments"] as? [String: [String: Any]])
        #expect(deployments["E"]?["status"] as? String == "WARMING_UP")
        let proxies = try #require(object["proxies"] as? [String: [String: Any]])
        #expect(proxies["n2"]?["status"] as? String == "DRAINING")
        #expect(try JSONDecoder().decode(ServeStatus.self, from: encoder.encode(status)) == status)
    }

    @Test(
        "A node's state: ALIVE is alive, anything else is not, and each encodes as Ray's string",
        arguments: [("ALIVE", true), ("DEAD", false), ("UNKNOWN", false), ("SUSPENDED", false)])
    func nodeState(raw: String, alive: Bool) throws {
        let state = try JSONDecoder().decode(NodeInfo.State.self, from: Data("\"\(raw)\"".utf8))
        #expect(state.rawValue == raw)
        #expect((state == .alive) == alive)
        #expect(String(decoding: try JSONEncoder().encode(state), as: UTF8.self) == "\"\(raw)\"")
    }

    @Test("The State API's node without a state is UNKNOWN, and not alive")
    func nodeWithoutState() throws {
        let listed = try JSONDecoder().decode(
            StateNodesResponse.Node.self, from: Data(#"{"node_id": "n", "resources_total": {"CPU": 2}}"#.utf8))
        let node = RayCluster.node(from: listed, summary: nil, usage: ["CPU": [1, 2]])
        #expect(node.state == .unknown)
        #expect(!node.isAlive)
        #expect(node.cpus.used == 0 && node.cpus.total == 2)
    }

    @Test("The authentication mode decodes token, disabled, and a mode a newer Ray adds")
    func authenticationMode() throws {
        let decode = { (raw: String) in
            try JSONDecoder().decode(RayCluster.AuthenticationMode.self, from: Data("\"\(raw)\"".utf8))
        }
        #expect(try decode("token") == .token)
        #expect(try decode("disabled") == .disabled)
        #expect(try decode("k8s").rawValue == "k8s")
        #expect(try decode("k8s") != .token)
    }
}
