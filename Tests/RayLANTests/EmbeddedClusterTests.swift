import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
import RayLANDoctor

extension OwnClusterTests {
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

                try await Self.checkPrivate(ray, home: home, environment: environment)

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

        /// Private by default: a detect and a gateway call on the embedded cluster, then every listening socket of
        /// every process of the cluster is on loopback, the dashboard and Serve's proxy refuse callers without
        /// the token or a key, and neither service key is in any file of the cluster's temp dir nor in any
        /// `--json` output without `--show-keys`.
        static func checkPrivate(_ ray: LocalRay, home: URL, environment: [String: String?]) async throws {
            let mode = try FileManager.default.attributesOfItem(atPath: home.path + "/local-token")[.posixPermissions]
            #expect(mode as? Int == 0o600, "the token file's mode")
            let out = home.appendingPathComponent("detect-out")
            let detect = try await CommandRunner.raylan(
                ["detect", TestEnvironment.packageRoot.path + "/samples/shapes_00.jpg", "--out", out.path, "--json"],
                environment: environment, timeout: .seconds(600))
            #expect(detect.status == 0, "\(detect)")
            let call = try await CommandRunner.raylan(
                [
                    "call", "--json", "--working-dir", TestEnvironment.packageRoot.path + "/Tests/Fixtures/gateway",
                    "tasks:add", "2", "3",
                ],
                environment: environment)
            #expect(call.status == 0, "\(call)")
            #expect(call.stdout.contains("5"), "\(call)")

            // Every listener of the cluster (Serve's proxy and replicas included) is on loopback.
            let pids = Set(ray.processIDs)
            let sockets = try await CommandRunner.run("/usr/bin/env", ["ss", "-ltnpH"])
            let listeners = sockets.stdout.split(separator: "\n").compactMap { line -> (String, Int32)? in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 4, let range = line.range(of: "pid=") else { return nil }
                let pid = Int32(line[range.upperBound...].prefix { $0.isNumber }) ?? -1
                return pids.contains(pid) ? (String(fields[3]), pid) : nil
            }
            let local = ["127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"]
            #expect(listeners.count >= 8, "too few listeners found for the cluster's processes:\n\(sockets.stdout)")
            let open = listeners.filter { address, _ in !local.contains { address.hasPrefix($0) } }
            #expect(open.isEmpty, "listening beyond loopback: \(open)")
            #expect(listeners.contains { $0.0.hasSuffix(":\(ray.ports.serve)") }, "Serve's proxy is not among them")

            // The dashboard without the token, and Serve's proxy without a key (answered by the proxy's guard).
            let refused = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: ray.address) { try await $0.jobs() }
            }
            #expect(refused?.code == .unauthorized)
            let python = try TestEnvironment.environment(.current).python
            let post = """
                import sys, urllib.request, urllib.error
                request = urllib.request.Request(sys.argv[1], data=b"x", method="POST")
                try: print(urllib.request.urlopen(request, timeout=30).status)
                except urllib.error.HTTPError as error: print(error.code, error.read().decode())
                """
            let anonymous = try await CommandRunner.run(
                python, ["-c", post, "http://127.0.0.1:\(ray.ports.serve)/raylan/shapes-yolo11n/detect"])
            #expect(anonymous.stdout.hasPrefix("401") && anonymous.stdout.contains("Serve proxy"), "\(anonymous)")

            // The keys: shown only with --show-keys, derived from the token, and in no file of the cluster.
            let hidden = try await CommandRunner.raylan(["serve", "status", "--json"], environment: environment)
            let shown = try await CommandRunner.raylan(
                ["serve", "status", "--json", "--show-keys"], environment: environment)
            let status = try JSONDecoder().decode(ServeStatus.self, from: Data(shown.stdout.utf8))
            let keys = ["shapes-yolo11n", "raylan-gateway"].compactMap {
                status.applications[$0]?.deployedAppConfig?["args"]?["api_key"]?.stringValue
            }
            #expect(keys.count == 2 && keys.allSatisfy { $0.hasPrefix("rlk1.") }, "\(shown.stdout)")
            // The plain detect placed the service to fit the cluster.
            let token = try AuthToken.loadOrCreate(at: home.path + "/local-token")
            let cpus = try await RayCluster.withConnection(to: ray.address, configuration: .init(token: token)) {
                try await $0.state().nodes.filter(\.isAlive).reduce(0) { $0 + $1.cpus.total }
            }
            PlacementTests.expectFitted(status.applications["shapes-yolo11n"], cpus: cpus)
            let watch = try await CommandRunner.raylan(["status", "--json"], environment: environment)
            for key in keys {
                for output in [hidden, watch, detect, call] { #expect(!output.stdout.contains(key)) }
                #expect(!detect.stderr.contains(key) && !call.stderr.contains(key))
            }
            // The cluster's token neither: it is in RayLAN's 0600 token file only.
            var files = 0
            let walker = FileManager.default.enumerator(atPath: ray.temporaryDirectory)
            while let name = walker?.nextObject() as? String {
                let path = ray.temporaryDirectory + "/" + name
                guard
                    (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType)
                        == .typeRegular, let data = FileManager.default.contents(atPath: path)
                else { continue }
                files += 1
                for key in keys { #expect(data.range(of: Data(key.utf8)) == nil, "a service key in \(path)") }
                #expect(data.range(of: Data(token.value.utf8)) == nil, "the cluster's token in \(path)")
            }
            #expect(files > 20, "the cluster's temp dir holds too few files to be its session folder")
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
