#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import NIOHTTP1
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension OwnClusterTests {
    @Suite("Token authentication (Ray 2.60, RAY_AUTH_MODE=token)", .cluster(.tokenAuth))
    struct AuthTests {
        @Test("No token is a 401 error, a wrong token a 403 error, each saying what to do")
        func refused() async throws {
            let cluster = try requireCluster()
            let none = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: cluster.address) { try await $0.jobs() }
            }
            #expect(none?.code == .unauthorized)
            #expect(none?.status == 401)
            #expect(none?.description.contains("--token-file") == true)

            let wrong = RayCluster.Configuration(token: AuthToken(value: "not-the-token", source: .inline("a test")))
            let refused = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: cluster.address, configuration: wrong) { try await $0.jobs() }
            }
            #expect(refused?.code == .forbidden)
            #expect(refused?.status == 403)
            #expect(refused?.description.contains("ray get-auth-token") == true)
        }

        @Test("With the token, status and a job work")
        func accepted() async throws {
            let cluster = try requireCluster()
            try await cluster.withConnection { ray in
                #expect(try await ray.serverInfo().rayVersion == RayVersion(2, 60, 0))
                let job = try await ray.submit(JobSpec(entrypoint: "echo authenticated"))
                let info = try await ray.waitForCompletion(of: job.submissionID, timeout: .seconds(120))
                #expect(info.status == .succeeded)
                #expect(try await ray.logs(of: job.submissionID).contains("authenticated"))
            }
        }

        @Test("The service key reaches 'raylan detect' with the cluster's token and no flag; anonymous callers get 401")
        func serviceKeyThroughTheDashboard() async throws {
            let cluster = try requireCluster()
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let tokenFile = home.appendingPathComponent("token")
            try Data(try #require(cluster.token).value.utf8).write(to: tokenFile)
            let out = home.appendingPathComponent("out")
            let detect = try await CommandRunner.raylan(
                [
                    "detect", RayClusterTests.Main.DetectionTests.samples.path, "--address",
                    cluster.address.description, "--token-file",
                    tokenFile.path, "--out", out.path, "--port", String(cluster.ray.ports.serve),
                ], environment: ["HOME": home.path], timeout: .seconds(600))
            #expect(detect.status == 0, "\(detect)")
            #expect(
                DetectionJournal.read(out.appendingPathComponent("detections.jsonl")).filter(\.succeeded).count == 12)

            try await cluster.withConnection { ray in
                let endpoint = try await ray.serveEndpoint(for: "shapes-yolo11n")
                #expect(endpoint.key != nil)
                let anonymous = try await ray.send(.GET, to: endpoint.anonymous, "/models")
                #expect(anonymous.status == 401, "\(anonymous.text)")
                // The dashboard's token is no key for the service.
                var withToken = endpoint
                withToken.key = ServiceKey(value: try #require(cluster.token).value, source: "the cluster token")
                #expect(try await ray.send(.GET, to: withToken, "/models").status == 401)
                #expect(try await ray.send(.GET, to: endpoint, "/models").status == 200)
                _ = try await ray.deleteServeApplication("shapes-yolo11n")
            }
            // Without the cluster's token the key cannot be read.
            let status = try await CommandRunner.raylan(
                ["serve", "status", "--address", cluster.address.description], environment: ["HOME": home.path])
            #expect(status.status == 77, "\(status)")
        }

        @Test("CLI: exit 77 without or with a wrong token; the right token from RAY_AUTH_TOKEN or --token-file works")
        func cli() async throws {
            let cluster = try requireCluster()
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let address = cluster.address.description
            // HOME without ~/.ray/auth_token, so no token is found by default.
            let none = try await CommandRunner.raylan(
                ["status", "--address", address], environment: ["HOME": home.path])
            #expect(none.status == 77, "\(none)")
            #expect(none.stderr.contains("requires a token (HTTP 401)"))

            let wrongFile = home.appendingPathComponent("wrong-token")
            try Data("wrong".utf8).write(to: wrongFile)
            let wrong = try await CommandRunner.raylan(
                ["status", "--address", address, "--token-file", wrongFile.path], environment: ["HOME": home.path])
            #expect(wrong.status == 77, "\(wrong)")
            #expect(wrong.stderr.contains("refused the token"))
            #expect(wrong.stderr.contains("HTTP 403"))

            let viaEnvironment = try await CommandRunner.raylan(
                ["status", "--address", address],
                environment: ["HOME": home.path, "RAY_AUTH_TOKEN": cluster.token?.value])
            #expect(viaEnvironment.status == 0, "\(viaEnvironment)")

            let rightFile = home.appendingPathComponent("token")
            try Data((cluster.token?.value ?? "").utf8).write(to: rightFile)
            let viaFile = try await CommandRunner.raylan(
                ["job", "submit", "--address", address, "--token-file", rightFile.path, "--", "echo", "token-file-ok"],
                environment: ["HOME": home.path])
            #expect(viaFile.status == 0, "\(viaFile)")
            #expect(viaFile.stdout.contains("token-file-ok"))
        }
    }
}

/// The token file that `raylan up --head` makes (``AuthToken/loadOrCreate(at:via:)``), without Ray.
@Suite("Token files: made private in one step, read again, never overwritten", .serialized)
struct AuthTokenFileTests {
    static func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    @Test("A new token file is mode 0600 under umask 022, holds the token, and a second call loads the same token")
    func createdPrivate() throws {
        let root = try TestEnvironment.makeTemporaryDirectory("raylan-token")
        defer { try? FileManager.default.removeItem(at: root) }
        let path = root.appendingPathComponent("state/cluster-token").path
        // umask is process-wide; 022 is the usual default, so tests running meanwhile see no change.
        let saved = umask(0o022)
        defer { umask(saved) }

        let token = try AuthToken.loadOrCreate(at: path, via: "--token-file")
        #expect(try Self.mode(path) == 0o600)
        #expect(token.value.count == 64 && token.value.allSatisfy(\.isHexDigit), "\(token.value)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == token.value + "\n")
        #expect(token.source == .file(path, via: "--token-file"))
        #expect(token.source.path == path)
        #expect(token.source.description == "--token-file \(path)")
        #expect(!token.description.contains(token.value))

        let again = try AuthToken.loadOrCreate(at: path)
        #expect(again.value == token.value)
        #expect(try Self.mode(path) == 0o600)
        let other = try AuthToken.loadOrCreate(at: root.appendingPathComponent("other-token").path)
        #expect(other.value != token.value)
    }

    @Test("An existing file is read as it is; an empty one or one that cannot be made is an error with a remedy")
    func existing() throws {
        let root = try TestEnvironment.makeTemporaryDirectory("raylan-token")
        defer { try? FileManager.default.removeItem(at: root) }
        let given = root.appendingPathComponent("given").path
        try Data("  copied-from-the-head \n".utf8).write(to: URL(fileURLWithPath: given))
        #expect(try AuthToken.loadOrCreate(at: given).value == "copied-from-the-head")
        #expect(try String(contentsOfFile: given, encoding: .utf8) == "  copied-from-the-head \n")

        let empty = root.appendingPathComponent("empty").path
        try Data().write(to: URL(fileURLWithPath: empty))
        let unreadable = #expect(throws: ClusterError.self) { try AuthToken.loadOrCreate(at: empty) }
        #expect(unreadable?.code == .tokenUnreadable)
        #expect(unreadable?.remedy?.contains("remove the file") == true)
        #expect(FileManager.default.contents(atPath: empty)?.isEmpty == true)

        let impossible = "/proc/raylan-no-such-folder/token"
        let unwritable = #expect(throws: ClusterError.self) { try AuthToken.loadOrCreate(at: impossible) }
        #expect(unwritable?.code == .tokenUnwritable)
        #expect(unwritable?.message.contains(impossible) == true)
        #expect(unwritable?.isUsageError == true)
    }

    @Test("load(from:) reads a file or a variable again; an inline token cannot be read again")
    func reload() throws {
        let root = try TestEnvironment.makeTemporaryDirectory("raylan-token")
        defer { try? FileManager.default.removeItem(at: root) }
        let path = root.appendingPathComponent("token").path
        let made = try AuthToken.loadOrCreate(at: path)
        #expect(try AuthToken.load(from: made.source) == made)

        let variable = AuthToken.Source.environment("RAY_AUTH_TOKEN")
        #expect(try AuthToken.load(from: variable, environment: ["RAY_AUTH_TOKEN": " secret\n"])?.value == "secret")
        #expect(try AuthToken.load(from: variable, environment: [:]) == nil)
        #expect(try AuthToken.load(from: .inline("a test")) == nil)

        // The source travels in records (local-cluster.json, node.json): it round-trips and holds no secret.
        let data = try JSONEncoder().encode(made.source)
        #expect(try JSONDecoder().decode(AuthToken.Source.self, from: data) == made.source)
        #expect(!String(decoding: data, as: UTF8.self).contains(made.value))
    }
}
