import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

extension RayClusterTests {
    @Suite("Compatibility with Ray 2.45.0 (the seed's version)", .cluster(.ray245))
    struct Ray245Tests {
        @Test("status, job submit with a working directory, and logs")
        func statusSubmitLogs() async throws {
            let cluster = try requireCluster()
            let address = cluster.address.description
            let status = try await CommandRunner.raylan(["status", "--address", address, "--json"])
            #expect(status.status == 0, "\(status)")
            let state = try JSONDecoder().decode(ClusterState.self, from: Data(status.stdout.utf8))
            #expect(state.server.rayVersion == RayVersion(2, 45, 0))
            #expect(state.server.pythonVersion?.hasPrefix("3.") == true)
            #expect(state.nodes.count == 1)
            #expect(state.nodes.first?.isAlive == true)

            let marker = UUID().uuidString
            let directory = try makeDirectory(["job.py": "print('compat', open('note.txt').read())\n", "note.txt": marker])
            defer { try? FileManager.default.removeItem(at: directory) }
            let id = "raylan-245-\(UUID().uuidString.prefix(8))"
            let submitted = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--id", id, "--working-dir", directory.path,
                "--env", "X=1", "--cpus", "1", "--", "python", "job.py",
            ])
            #expect(submitted.status == 0, "\(submitted)")
            #expect(submitted.stdout.contains("compat \(marker)"))

            let logs = try await CommandRunner.raylan(["job", "logs", id, "--address", address])
            #expect(logs.status == 0, "\(logs)")
            #expect(logs.stdout.contains("compat \(marker)"))

            let failed = try await CommandRunner.raylan(["job", "submit", "--address", address, "--", "false"])
            #expect(failed.status == 3, "\(failed)")
            #expect(failed.stderr.contains("FAILED"))
        }
    }
}
