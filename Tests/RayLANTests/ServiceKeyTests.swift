import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

@Suite("Service keys: derived from the cluster's token, kept as a verifier, hidden when printed")
struct ServiceKeyTests {
    struct Golden: Decodable {
        var token: String
        var salt: String
        var key: String
        var verifier: String
    }

    /// The fixture the Python suite reads too (cluster/tests/test_serve_guard.py): Serve's proxy guard checks
    /// what Swift derives.
    static func golden() throws -> Golden {
        let url = TestEnvironment.packageRoot.appendingPathComponent("Tests/Fixtures/contracts/service-key.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    static func application(_ arguments: [String: JSONValue]) -> ServeStatus.Application {
        ServeStatus.Application(
            name: "app", routePrefix: "/app", status: .running, message: nil, deployments: nil,
            deployedAppConfig: .object(["name": .string("app"), "args": .object(arguments)]))
    }

    @Test("The derived key and its verifier are the golden ones")
    func derivation() throws {
        let golden = try Self.golden()
        let token = AuthToken(value: golden.token, source: .inline("test"))
        let key = ServiceKey.derive(from: token, salt: golden.salt)
        #expect(key.value == golden.key)
        #expect(key.verifier == golden.verifier)
        #expect(!key.description.contains(golden.token) && !key.description.contains(key.value))
        let other = ServiceKey.derive(from: AuthToken(value: "another", source: .inline("test")), salt: golden.salt)
        #expect(other.value != key.value)
        #expect(ServiceKey.derive(from: token, salt: ServiceKey.newSalt()).value != key.value)
    }

    @Test("A derived key: the config holds the salt and the verifier, never the key; any other key in clear")
    func configArguments() throws {
        let golden = try Self.golden()
        let token = AuthToken(value: golden.token, source: .inline("test"))
        let derived = ServiceKey.derive(from: token, salt: golden.salt)
        let arguments = derived.configArguments
        #expect(arguments == ["key_salt": .string(golden.salt), "api_key_sha256": .string(golden.verifier)])
        let application = Self.application(arguments)
        #expect(ServiceKey.deployed(in: application, token: token)?.value == golden.key)
        #expect(ServiceKey.deployed(in: application, token: nil) == nil)
        #expect(ServiceKey.deployed(in: application, token: AuthToken(value: "x", source: .inline("t"))) == nil)
        #expect(ServiceKey.deployedVerifier(in: application) == golden.verifier)

        let given = ServiceKey(value: "a-given-key-of-some-length", source: "--key-file k")
        #expect(given.configArguments == ["api_key": .string(given.value)])
        let clear = Self.application(given.configArguments)
        #expect(ServiceKey.deployed(in: clear, token: nil)?.value == given.value)
        #expect(ServiceKey.deployedVerifier(in: clear) == given.verifier)
        #expect(ServiceKey.deployedVerifier(in: Self.application([:])) == nil)
    }

    @Test("A printed status hides a key kept in clear, and shows the caller's keys only when asked")
    func printable() throws {
        let golden = try Self.golden()
        let token = AuthToken(value: golden.token, source: .inline("test"))
        let derived = ServiceKey.derive(from: token, salt: golden.salt)
        let clear = ServiceKey(value: "a-key-kept-in-clear-0123", source: "test")
        var status = ServeStatus(applications: [:])
        status.applications["derived"] = Self.application(derived.configArguments)
        status.applications["clear"] = Self.application(clear.configArguments)
        let encoder = JSONEncoder()
        let hidden = String(
            decoding: try encoder.encode(status.printable(showingKeys: false, token: token)), as: UTF8.self)
        #expect(!hidden.contains(clear.value) && !hidden.contains(derived.value))
        let shown = String(
            decoding: try encoder.encode(status.printable(showingKeys: true, token: token)), as: UTF8.self)
        #expect(shown.contains(clear.value) && shown.contains(derived.value))
    }
}
