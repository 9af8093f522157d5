import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

extension RayClusterTests.Main {
    @Suite("Cluster state and the Jobs API")
    struct JobsTests {
        @Test("Status shows one alive head node with its logical resources and the cluster's versions")
        func status() async throws {
            let cluster = try requireCluster()
            let python = try await CommandRunner.run(
                cluster.environment.python, ["-c", "import platform; print(platform.python_version())"])
            let state = try await cluster.withConnection { try await $0.state() }
            #expect(state.server.rayVersion == RayVersion(2, 60, 0))
            #expect(state.server.pythonVersion == python.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            try #require(state.nodes.count == 1)
            let node = state.nodes[0]
            #expect(node.isHead)
            #expect(node.isAlive)
            #expect(node.cpus.total == 4)
            #expect(node.gpus.total == 1)
            #expect(node.customResources["special"]?.total == 2)
            #expect(node.memory.total > 0)
            #expect(!node.ip.isEmpty)
        }

        @Test(
            "A job with a working directory runs it, streams its log and succeeds; the same folder is not uploaded twice"
        )
        func workingDirectory() async throws {
            let cluster = try requireCluster()
            let marker = UUID().uuidString
            let directory = try makeDirectory([
                "main.py":
                    "import pathlib\nprint('marker', open('data/input.txt').read().strip())\nprint('second line')\n",
                "data/input.txt": marker,
            ])
            defer { try? FileManager.default.removeItem(at: directory) }
            try await cluster.withConnection { ray in
                let spec = JobSpec(entrypoint: "python main.py", workingDirectory: directory)
                let first = try await ray.submit(spec)
                #expect(first.workingDirectory?.uploaded == true)
                #expect(first.workingDirectory?.uri == (try WorkingDirectoryPackage.scan(directory).uri))
                var lines: [String] = []
                for try await line in ray.logLines(of: first.submissionID, follow: true) { lines.append(line) }
                #expect(lines.contains("marker \(marker)"))
                #expect(lines.contains("second line"))
                let info = try await ray.waitForCompletion(of: first.submissionID, timeout: .seconds(120))
                #expect(info.status == .succeeded)

                let second = try await ray.submit(spec)
                #expect(second.workingDirectory?.uploaded == false)
                #expect(second.workingDirectory?.uri == first.workingDirectory?.uri)
                #expect(
                    try await ray.waitForCompletion(of: second.submissionID, timeout: .seconds(120)).status
                        == .succeeded)
            }
        }

        @Test("A failing entrypoint ends FAILED with Ray's message and error type")
        func failing() async throws {
            let cluster = try requireCluster()
            try await cluster.withConnection { ray in
                let job = try await ray.submit(
                    JobSpec(entrypoint: "python -c \"import sys; print('about to fail'); sys.exit(3)\""))
                let info = try await ray.waitForCompletion(of: job.submissionID, timeout: .seconds(120))
                #expect(info.status == .failed)
                #expect(info.message?.contains("exit code 3") == true)
                #expect(info.errorType == "JOB_ENTRYPOINT_COMMAND_ERROR")
                #expect(try await ray.logs(of: job.submissionID).contains("about to fail"))
            }
        }

        @Test("--env, GPUs and custom resources reach the job; a running job cannot be deleted and is stopped")
        func resourcesStopDelete() async throws {
            let cluster = try requireCluster()
            let value = UUID().uuidString
            try await cluster.withConnection { ray in
                var spec = JobSpec(
                    entrypoint: "python -c \"import os, time; print('FOO=' + os.environ['FOO']); "
                        + "print('CUDA=' + os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), flush=True); time.sleep(600)\""
                )
                spec.environment = ["FOO": value]
                spec.resources = .init(gpus: 1, custom: ["special": 1])
                let id = try await ray.submit(spec).submissionID

                let started = try await eventually { try await ray.logs(of: id).contains("FOO=\(value)") }
                #expect(started)
                #expect(try await ray.logs(of: id).contains("CUDA=0"))
                let reserved = try await eventually {
                    let node = try await ray.state().nodes[0]
                    return node.gpus.used == 1 && node.customResources["special"]?.used == 1
                }
                #expect(reserved)

                let notDeleted = await #expect(throws: JobError.self) { try await ray.deleteJob(id) }
                #expect(notDeleted?.code == .notTerminal)

                #expect(try await ray.stopJob(id))
                let info = try await ray.waitForCompletion(of: id, timeout: .seconds(60))
                #expect(info.status == .stopped)
                // Already finished: nothing to stop. Ray answers true while the job's supervisor actor still exits,
                // which can outlast the STOPPED status by a moment on a busy machine; then false.
                let nothingToStop = try await eventually(timeout: .seconds(60)) { try await ray.stopJob(id) == false }
                #expect(nothingToStop, "stopping the finished job still answered true after 60 s")
            }
        }

        @Test("A submission whose answer is lost is sent again with RayLAN's own id, and makes one job")
        func lostAnswer() async throws {
            let cluster = try requireCluster()
            let marker = "lost-answer-\(UUID().uuidString.prefix(8))"
            let spec = JobSpec(entrypoint: "echo \(marker)")
            let submission = try await FakeHTTPServer.withProxy(
                to: cluster.address, losing: "POST /api/jobs/ ", mode: "close"
            ) { proxy in
                let result = try await RayCluster.withConnection(
                    to: proxy.address, configuration: .init(token: cluster.token)
                ) { try await $0.submit(spec) }
                #expect(proxy.requests.filter { $0.method == "POST" && $0.path == "/api/jobs/" }.count == 2)
                return result
            }
            #expect(submission.submissionID.hasPrefix("raysubmit_"))
            try await cluster.withConnection { ray in
                let jobs = try await ray.jobs().filter { $0.entrypoint == spec.entrypoint }
                #expect(jobs.map(\.submissionID) == [submission.submissionID])
                let info = try await ray.waitForCompletion(of: submission.submissionID, timeout: .seconds(120))
                #expect(info.status == .succeeded)
            }
        }

        @Test("CLI: Ctrl-C while the submission waits for its answer prints the id, which finds the job")
        func interruptedSubmission() async throws {
            let cluster = try requireCluster()
            let marker = "interrupted-\(UUID().uuidString.prefix(8))"
            let tokenFolder = try TestEnvironment.makeTemporaryDirectory("raylan-token")
            defer { try? FileManager.default.removeItem(at: tokenFolder) }
            let tokenFile = tokenFolder.appendingPathComponent("t")
            try Data((cluster.token?.value ?? "").utf8).write(to: tokenFile)
            let tokenArguments = cluster.token == nil ? [] : ["--token-file", tokenFile.path]
            try await FakeHTTPServer.withProxy(to: cluster.address, losing: "POST /api/jobs/ ", mode: "hold") {
                proxy in
                let command = try RunningCommand(
                    raylan: ["job", "submit", "--address", proxy.address.description] + tokenArguments + [
                        "--", "echo", marker,
                    ])
                let posted = await eventually(timeout: .seconds(60)) {
                    proxy.requests.contains { $0.method == "POST" && $0.path == "/api/jobs/" }
                }
                try #require(posted, "\(command.stdout)\n\(command.stderr)")
                // The POST has reached Ray (the proxy holds only its answer); give Ray a moment to record it.
                let recorded = try await eventually(timeout: .seconds(60)) {
                    try await cluster.withConnection { try await $0.jobs() }.contains {
                        $0.entrypoint == "echo \(marker)"
                    }
                }
                #expect(recorded)
                command.interrupt()
                let result = await command.wait(timeout: .seconds(60))
                #expect(result.status == 130, "\(result)")
                let id = try #require(
                    result.stderr.firstMatch(of: /job (raysubmit_[A-Za-z0-9]{16})/)?.1, "\(result)")
                #expect(result.stderr.contains("raylan job status \(id)"), "\(result)")
                let info = try await cluster.withConnection { try await $0.job(String(id)) }
                #expect(info.entrypoint == "echo \(marker)")
            }
        }

        @Test("Unknown job ids and taken submission ids are clear errors; a finished job is deleted")
        func unknownAndDuplicate() async throws {
            let cluster = try requireCluster()
            try await cluster.withConnection { ray in
                for call in [
                    { _ = try await ray.job("raylan-no-such-job") },
                    { _ = try await ray.stopJob("raylan-no-such-job") },
                    { _ = try await ray.deleteJob("raylan-no-such-job") },
                    { _ = try await ray.logs(of: "raylan-no-such-job") },
                ] as [@Sendable () async throws -> Void] {
                    let error = await #expect(throws: JobError.self) { try await call() }
                    #expect(error?.code == .notFound)
                    #expect(error?.description.contains("raylan-no-such-job") == true)
                }
                let id = "raylan-dup-\(UUID().uuidString.prefix(8))"
                _ = try await ray.submit(JobSpec(entrypoint: "echo one", submissionID: id))
                let duplicate = await #expect(throws: JobError.self) {
                    try await ray.submit(JobSpec(entrypoint: "echo two", submissionID: id))
                }
                #expect(duplicate?.code == .alreadyExists)
                #expect(try await ray.waitForCompletion(of: id, timeout: .seconds(120)).status == .succeeded)
                #expect(try await ray.deleteJob(id))
                let gone = await #expect(throws: JobError.self) { try await ray.job(id) }
                #expect(gone?.code == .notFound)
            }
        }
    }
}

@Suite("Connection failures")
struct ConnectionFailureTests {
    @Test("An address where nothing listens fails fast, naming the address and port")
    func unreachable() async throws {
        try await ClosedPort.with { socket in
            let address = ClusterAddress(host: "127.0.0.1", port: socket)
            let error = await #expect(throws: ClusterError.self) {
                try await RayCluster.withConnection(to: address) { try await $0.serverInfo() }
            }
            #expect(error?.code == .unreachable)
            #expect(error?.description.contains("127.0.0.1:\(socket)") == true)
            #expect(error?.description.contains("connection refused") == true)
        }
    }

    @Test("A held closed port cannot be bound by anyone, SO_REUSEADDR or not, until let go; a picked free port can")
    func closedPortIsHeld() throws {
        // Tests that want "connection refused" hold a ClosedPort: a port picked free and closed again could be
        // bound by a fake server of a test running beside (it was, once: each test got the other's answer).
        var closed: ClosedPort? = try ClosedPort()
        let port = try #require(closed).port
        #expect(!FreePort.isFree(port, on: "127.0.0.1"))
        #expect(!FreePort.isFree(port, on: "0.0.0.0"))
        closed = nil
        #expect(FreePort.isFree(port, on: "127.0.0.1"))
        let picked = try FreePort.pick(1)[0]
        #expect(FreePort.isFree(picked, on: "127.0.0.1"))
    }
}
