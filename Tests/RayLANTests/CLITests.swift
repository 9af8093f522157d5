import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal
import RayLANDoctor

extension RayClusterTests.Main {
    /// The built `raylan` binary against the shared cluster: stdout, stderr and exit codes.
    @Suite("raylan CLI")
    struct CLITests {
        var address: String { get throws { try requireCluster().address.description } }

        @Test("status prints versions and the node; --json is the same data")
        func status() async throws {
            let human = try await CommandRunner.raylan(["status", "--address", address])
            #expect(human.status == 0, "\(human)")
            #expect(human.stdout.contains("Ray 2.60.0"))
            #expect(human.stdout.contains("head"))
            #expect(human.stdout.contains("ALIVE"))

            let json = try await CommandRunner.raylan(["status", "--address", address, "--json"])
            #expect(json.status == 0, "\(json)")
            let state = try JSONDecoder().decode(ClusterState.self, from: Data(json.stdout.utf8))
            #expect(state.nodes.count == 1)
            #expect(state.nodes.first?.gpus.total == 1)
            #expect(state.server.rayVersion == RayVersion(2, 60, 0))
        }

        @Test("status --watch redraws until Ctrl-C, then exits 0; --json --watch gives one object per refresh")
        func statusWatch() async throws {
            let watching = try RunningCommand(raylan: ["status", "--watch", "--interval", "0.3", "--address", address])
            let redrawn = await eventually(timeout: .seconds(60)) {
                watching.stdout.components(separatedBy: "raylan status --watch").count > 2
            }
            watching.interrupt()
            let result = await watching.wait(timeout: .seconds(30))
            #expect(redrawn, "\(result)")
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("ALIVE"))

            let lines = try RunningCommand(raylan: [
                "status", "--watch", "--json", "--interval", "0.3", "--address", address,
            ])
            _ = await eventually(timeout: .seconds(60)) { lines.stdout.split(separator: "\n").count >= 2 }
            lines.interrupt()
            let json = await lines.wait(timeout: .seconds(30))
            #expect(json.status == 0, "\(json)")
            let records = json.stdout.split(separator: "\n")
            #expect(records.count >= 2)
            for record in records {
                let object = try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any]
                #expect((object?["state"] as? [String: Any])?["nodes"] != nil, "\(record)")
            }
        }

        @Test("doctor passes on the shared cluster; its logical GPU is a WARN")
        func doctor() async throws {
            let result = try await CommandRunner.raylan(["doctor", "--address", address, "--json"])
            #expect(result.status == 0, "\(result)")
            let report = try JSONDecoder().decode(DoctorReport.self, from: Data(result.stdout.utf8))
            #expect(report.passed)
            #expect(report[.versions]?.status == .pass, "\(String(describing: report[.versions]))")
            #expect(report[.nodes]?.summary.contains("1 node(s) alive") == true)
            let gpus = try #require(report[.gpus])
            #expect(gpus.status == .warn && gpus.summary.contains("logical GPUs only"), "\(gpus)")

            let bad = try await CommandRunner.raylan(["doctor", "--address", "http://[bad"])
            #expect(bad.status == 2, "\(bad)")
            #expect(bad.stdout.contains("[1/8] FAIL"))
            #expect(bad.stdout.contains("[8/8] SKIP"))
        }

        @Test("job submit uploads the folder, streams the output and exits 0")
        func submitSucceeds() async throws {
            let marker = UUID().uuidString
            let directory = try makeDirectory(["hello.py": "import sys\nprint('hello', sys.argv[1])\n"])
            defer { try? FileManager.default.removeItem(at: directory) }
            let result = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--working-dir", directory.path, "--", "python", "hello.py",
                marker,
            ])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("hello \(marker)"))
            #expect(result.stderr.contains("SUCCEEDED"))
            #expect(result.stderr.contains("gcs://_ray_pkg_"))
        }

        @Test("A failing job exits 3 and prints Ray's message and error type")
        func submitFails() async throws {
            let result = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--", "python", "-c", "import sys; print('oops'); sys.exit(7)",
            ])
            #expect(result.status == 3, "\(result)")
            #expect(result.stdout.contains("oops"))
            #expect(result.stderr.contains("FAILED"))
            #expect(result.stderr.contains("exit code 7"))
            #expect(result.stderr.contains("JOB_ENTRYPOINT_COMMAND_ERROR"))
        }

        @Test("--no-wait, then list, status, logs, delete with --json")
        func manage() async throws {
            let id = "raylan-cli-\(UUID().uuidString.prefix(8))"
            let submitted = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--no-wait", "--id", id, "--env", "GREETING=hi there",
                "--", "python", "-c", "import os; print(os.environ['GREETING'])",
            ])
            #expect(submitted.status == 0, "\(submitted)")
            #expect(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == id)
            try await requireCluster().withConnection {
                _ = try await $0.waitForCompletion(of: id, timeout: .seconds(120))
            }

            let list = try await CommandRunner.raylan(["job", "list", "--address", address, "--json"])
            let jobs = try JSONDecoder().decode([JobInfo].self, from: Data(list.stdout.utf8))
            #expect(jobs.contains { $0.submissionID == id && $0.status == .succeeded })

            let status = try await CommandRunner.raylan(["job", "status", id, "--address", address, "--json"])
            #expect(try JSONDecoder().decode(JobInfo.self, from: Data(status.stdout.utf8)).status == .succeeded)

            let logs = try await CommandRunner.raylan(["job", "logs", id, "--address", address])
            #expect(logs.status == 0)
            #expect(logs.stdout.contains("hi there"))

            let deleted = try await CommandRunner.raylan(["job", "delete", id, "--address", address, "--json"])
            #expect(deleted.status == 0, "\(deleted)")
            #expect(deleted.stdout.contains("\"deleted\" : true"))

            let missing = try await CommandRunner.raylan(["job", "status", id, "--address", address])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("No job '\(id)'"))
        }

        @Test("Ctrl-C with --stop-on-interrupt stops the job and exits 130")
        func interrupt() async throws {
            let id = "raylan-int-\(UUID().uuidString.prefix(8))"
            let command = try RunningCommand(raylan: [
                "job", "submit", "--address", address, "--id", id, "--stop-on-interrupt",
                "--", "python", "-c", "import time; print('running', flush=True); time.sleep(600)",
            ])
            let running = await eventually { command.stdout.contains("running") }
            try #require(running, "the job did not start: \(command.stderr)")
            command.interrupt()
            let result = await command.wait()
            #expect(result.status == 130, "\(result)")
            #expect(result.stderr.contains("Stopped job \(id)"))
            let info = try await requireCluster().withConnection { try await $0.job(id) }
            #expect(info.status == .stopped)
        }

        @Test(
            "Bad input is one line on stderr, exit 64, and starts nothing",
            arguments: [
                (["job", "submit", "--working-dir", "/nonexistent/raylan-dir", "--", "true"], "does not exist"),
                (["job", "submit", "--env", "NOEQUALS", "--", "true"], "has no '='"),
                (["job", "submit", "--gpus", "-1", "--", "true"], "--gpus must be a number of 0 or more"),
                (["job", "submit", "--resource", "special=lots", "--", "true"], "is not a number"),
                (["job", "submit", "--memory", "2GB", "--", "true"], "'2GB' is invalid for '--memory"),
                (["job", "submit"], "The entrypoint is missing"),
                (["job", "submit", "--"], "The entrypoint is missing"),
                (["status", "--address", "gpu-box:99999"], "is not a port number"),
                (["status", "--address", "ftp://gpu-box"], "is not supported"),
                (["actor", "call", "--timeout", "0", "counter", "get"], "--timeout must be more than 0 seconds"),
                (["call", "--timeout", "1e17", "tasks:noop"], "--timeout must be more than 0 seconds and below"),
                (
                    ["detect", "photo.jpg", "--batch-size", "4"],
                    "--batch-size does not apply to images (only to --on-cluster images, videos/streams)"
                ),
                (
                    ["detect", "--on-cluster", "/data", "--batch-size", "0"],
                    "--batch-size must be a whole number from 1"
                ),
                (["detect", "clip.mp4", "--batch-size", "65"], "--batch-size must be a whole number from 1 to 64"),
                (["serve", "deploy", "--port", "70000"], "--port must be a whole number from 1 to 65535"),
                (["up", "--head", "--bind", "127.0.0.1"], "--bind 127.0.0.1 is this host's loopback"),
            ])
        func badInput(arguments: [String], expected: String) async throws {
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let result = try await CommandRunner.raylan(arguments, environment: ["RAYLAN_HOME": home.path])
            #expect(result.status == 64, "\(result)")
            #expect(result.stderr.contains(expected), "\(result)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(result)")
            #expect(lines.first?.hasPrefix("Error: ") == true)
            #expect(result.stdout.isEmpty)
            // Nothing started: no embedded cluster was recorded.
            #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("local-cluster.json").path))
        }

        @Test("A working directory over 100 MiB is refused before any upload, exit 64")
        func tooLarge() async throws {
            let directory = try makeDirectory(["main.py": "print(1)"])
            defer { try? FileManager.default.removeItem(at: directory) }
            let big = directory.appendingPathComponent("weights.bin")
            _ = FileManager.default.createFile(atPath: big.path, contents: nil)
            let handle = try FileHandle(forWritingTo: big)
            let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
            for _ in 0..<101 { try handle.write(contentsOf: random.readData(ofLength: 1 << 20)) }
            try handle.close()
            try random.close()
            let result = try await CommandRunner.raylan([
                "job", "submit", "--address", address, "--working-dir", directory.path, "--", "python", "main.py",
            ])
            #expect(result.status == 64, "\(result)")
            #expect(result.stderr.contains("upload cap"))
            #expect(result.stderr.contains("weights.bin"))
            let package = try WorkingDirectoryPackage.scan(directory)
            let uploaded = try await requireCluster().withConnection { try await $0.hasPackage(package) }
            #expect(!uploaded)
        }

        @Test("Unreachable address: exit 69 with the address and port")
        func unreachable() async throws {
            try await ClosedPort.with { port in
                let result = try await CommandRunner.raylan(["status", "--address", "127.0.0.1:\(port)"])
                #expect(result.status == 69, "\(result)")
                #expect(result.stderr.contains("127.0.0.1:\(port)"))
                #expect(result.stderr.contains("connection refused"))
            }
        }

        @Test("The seed's ray://HOST:6379 is explained and the dashboard URL used instead")
        func rayClientAddress() async throws {
            let result = try await CommandRunner.raylan(["status", "--address", "ray://127.0.0.1:6379"])
            #expect(result.stderr.contains("Ray Client"))
            #expect(result.stderr.contains("10001"))
            #expect(result.stderr.contains("http://127.0.0.1:8265"))
            #expect([0, 69].contains(result.status), "\(result)")
        }
    }
}

extension RayClusterTests.Main.CLITests {
    @Test("A job's terminal control sequences are removed from its log on stdout; --raw keeps them")
    func hostileLog() async throws {
        let id = "raylan-hostile-\(UUID().uuidString.prefix(8))"
        // Ray reads the log as text, so the carriage return already reaches RayLAN as a newline.
        let script = #"import sys; sys.stdout.write("\x1b]0;pwned\x07\x1b[31mred\x1b[0m\n"); print("a\rb")"#
        let submitted = try await CommandRunner.raylan([
            "job", "submit", "--address", address, "--id", id, "--", "python", "-c", script,
        ])
        #expect(submitted.status == 0, "\(submitted)")
        #expect(submitted.stdout.contains("red\n") && submitted.stdout.contains("a\nb\n"), "\(submitted)")
        #expect(!submitted.stdout.contains("\u{1B}") && !submitted.stdout.contains("\r"), "\(submitted.stdout)")

        let logs = try await CommandRunner.raylan(["job", "logs", id, "--address", address])
        #expect(logs.status == 0, "\(logs)")
        #expect(logs.stdout.contains("red\n") && !logs.stdout.contains("\u{1B}"), "\(logs.stdout)")

        // The same log as written: the title sequence and the colour are there, shown to have reached the log.
        let raw = try await CommandRunner.raylan(["job", "logs", id, "--raw", "--address", address])
        #expect(raw.status == 0, "\(raw)")
        #expect(raw.stdout.contains("\u{1B}]0;pwned\u{07}\u{1B}[31mred\u{1B}[0m"), "\(raw.stdout.debugDescription)")
    }
}

@Suite("raylan CLI without a cluster")
struct CLIWithoutClusterTests {
    @Test("job logs and job submit accept --raw (the address is unreachable: exit 69, not a usage error)")
    func rawFlag() async throws {
        try await ClosedPort.with { port in
            let address = ["--address", "127.0.0.1:\(port)"]
            // A home of its own and no Python: nothing can start a local Ray, whatever the arguments.
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home")
            defer { try? FileManager.default.removeItem(at: home) }
            let environment = ["RAYLAN_HOME": home.path, "RAYLAN_PYTHON": "/nonexistent/python"]
            for arguments in [
                ["job", "logs", "some-job", "--raw"] + address,
                ["job", "submit", "--raw", "--no-wait"] + address + ["--", "true"],
            ] {
                let result = try await CommandRunner.raylan(arguments, environment: environment)
                #expect(result.status == 69, "\(result)")
                #expect(result.stderr.contains("127.0.0.1:\(port)") && !result.stderr.contains("--raw"), "\(result)")
            }
        }
    }

    @Test("--lease on streamed images, or outside 5…86400 seconds, exits 64 naming it, before connecting")
    func leaseRefused() async throws {
        try await ClosedPort.with { port in
            let address = ["--address", "127.0.0.1:\(port)"]
            let image = TestEnvironment.packageRoot.appendingPathComponent("samples/shapes_00.jpg").path
            let streamed = try await CommandRunner.raylan(["detect", image, "--lease", "30"] + address)
            #expect(streamed.status == 64, "\(streamed)")
            #expect(streamed.stderr.contains("--lease does not apply to images"), "\(streamed.stderr)")
            for lease in ["4", "86401"] {
                let outside = try await CommandRunner.raylan(
                    ["detect", "rtsp://127.0.0.1:1/x", "--lease", lease] + address)
                #expect(outside.status == 64, "\(outside)")
                #expect(outside.stderr.contains("--lease must be a whole number from 5 to 86400"), "\(outside.stderr)")
                #expect(!outside.stderr.contains("127.0.0.1:\(port)"), "it connected: \(outside.stderr)")
            }
        }
    }
}
