import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

extension RayClusterTests {
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

            let wrong = RayCluster.Configuration(token: AuthToken(value: "not-the-token", source: "a test"))
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

        @Test("CLI: exit 77 without or with a wrong token; the right token from RAY_AUTH_TOKEN or --token-file works")
        func cli() async throws {
            let cluster = try requireCluster()
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let address = cluster.address.description
            // HOME without ~/.ray/auth_token, so no token is found by default.
            let none = try await CommandRunner.raylan(["status", "--address", address], environment: ["HOME": home.path])
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
                ["status", "--address", address], environment: ["HOME": home.path, "RAY_AUTH_TOKEN": cluster.token])
            #expect(viaEnvironment.status == 0, "\(viaEnvironment)")

            let rightFile = home.appendingPathComponent("token")
            try Data((cluster.token ?? "") .utf8).write(to: rightFile)
            let viaFile = try await CommandRunner.raylan(
                ["job", "submit", "--address", address, "--token-file", rightFile.path, "--", "echo", "token-file-ok"],
                environment: ["HOME": home.path])
            #expect(viaFile.status == 0, "\(viaFile)")
            #expect(viaFile.stdout.contains("token-file-ok"))
        }
    }
}
