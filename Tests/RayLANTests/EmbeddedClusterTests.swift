import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

extension RayClusterTests {
    @Suite("The embedded local Ray (no address given)")
    struct EmbeddedClusterTests {
        @Test(
            "Started on first use, reused, kept running and said so, then stopped by 'raylan down' to the last process")
        func lifecycle() async throws {
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let environment: [String: String?] = [
                "RAYLAN_HOME": home.path, "RAYLAN_PYTHON": try TestEnvironment.environment(.current).python,
            ]
            let embedded = EmbeddedCluster(stateDirectory: home.path)
            do {
                let first = try await CommandRunner.raylan(["status"], environment: environment)
                #expect(first.status == 0, "\(first)")
                #expect(first.stderr.contains("Starting a private local Ray"))
                #expect(first.stderr.contains("keeps running"))
                #expect(first.stderr.contains("raylan down"))
                #expect(first.stdout.contains("ALIVE"))

                let ray = try #require(embedded.recorded())
                #expect(ray.dashboardHost == "127.0.0.1")
                let pids = ray.processIDs
                #expect(pids.count > 3)

                let second = try await CommandRunner.raylan(
                    ["job", "submit", "--", "echo", "embedded-ok"], environment: environment)
                #expect(second.status == 0, "\(second)")
                #expect(second.stdout.contains("embedded-ok"))
                #expect(!second.stderr.contains("Starting a private local Ray"))

                // The embedded cluster passes the doctor: private by design, no FAIL (CPU-only is a WARN).
                let doctor = try await CommandRunner.raylan(["doctor", "--json"], environment: environment)
                #expect(doctor.status == 0, "\(doctor)")
                let report = try JSONDecoder().decode(DoctorReport.self, from: Data(doctor.stdout.utf8))
                #expect(report.passed)
                #expect(report.checks.count == 8)
                #expect(report[.address]?.status == .pass && report[.address]?.summary.contains("embedded") == true)
                #expect(report[.ports]?.status == .pass, "\(report.checks)")
                #expect(report[.dashboard]?.summary.contains("private") == true)
                #expect(report[.gpus]?.status == .warn && report[.gpus]?.summary.contains("CPU-only") == true)
                #expect(!doctor.stderr.contains("Starting a private local Ray"))

                let down = try await CommandRunner.raylan(["down"], environment: environment)
                #expect(down.status == 0, "\(down)")
                #expect(down.stdout.contains("Stopped the local Ray"))
                #expect(pids.allSatisfy { !ProcessGroup.isAlive($0) })
                #expect(!ray.isRunning)
                #expect(!FileManager.default.fileExists(atPath: ray.temporaryDirectory))

                let again = try await CommandRunner.raylan(["down"], environment: environment)
                #expect(again.status == 0)
                #expect(again.stdout.contains("No Ray started by RayLAN"))
            } catch {
                _ = try? await embedded.stop()
                throw error
            }
            _ = try? await embedded.stop()
        }

        @Test("A token from a file: recorded by its file, never its value, and the cluster is found again with it")
        func tokenSourceRecorded() async throws {
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let token = try AuthToken.loadOrCreate(at: home.appendingPathComponent("local-token").path)
            let configuration = LocalRayConfiguration(
                environment: try TestEnvironment.environment(.current), cpus: 1, objectStoreBytes: 100 << 20,
                authToken: token)
            let embedded = EmbeddedCluster(stateDirectory: home.path)
            do {
                let first = try await embedded.findOrStart(configuration: { configuration })
                #expect(first.started)
                #expect(first.ray.tokenSource == token.source)
                let record = try String(
                    contentsOfFile: home.appendingPathComponent("local-cluster.json").path, encoding: .utf8)
                #expect(!record.contains(token.value), "the secret is in local-cluster.json")
                #expect(embedded.recorded()?.tokenSource == token.source)

                // The cluster really wants the token, so finding it again proves the recorded source was used
                // (this process's environment has no RAY_AUTH_TOKEN for it).
                let refused = await #expect(throws: ClusterError.self) {
                    try await RayCluster.withConnection(to: first.ray.address) { try await $0.jobs() }
                }
                #expect(refused?.code == .unauthorized)

                let second = try await embedded.findOrStart(configuration: { configuration })
                #expect(!second.started, "the running cluster was not recognised with its recorded token")
                #expect(second.ray.pid == first.ray.pid)
            } catch {
                _ = try? await embedded.stop()
                throw error
            }
            let stopped = try await embedded.stop()
            #expect(stopped != nil && stopped?.stale == nil)
            #expect(stopped?.ray.isRunning == false)
        }

        @Test("A missing Python environment says which command creates it")
        func missingPython() async throws {
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let result = try await CommandRunner.raylan(
                ["status"], environment: ["RAYLAN_HOME": home.path, "RAYLAN_PYTHON": "/nonexistent/python"])
            #expect(result.status == 1, "\(result)")
            #expect(result.stderr.contains("scripts/setup-python.sh"))
            #expect(result.stderr.contains("/nonexistent/python"))
        }
    }
}
