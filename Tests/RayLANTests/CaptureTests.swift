#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// `ProcessGroup.capture`: short commands run with swift-subprocess in a process group of their own, killed as a
/// group at the timeout.
@Suite("Capture: short commands, their output, status and timeout", .timeLimit(.minutes(1)))
struct CaptureTests {
    /// A new private folder for one test; the caller removes it.
    static func makeFolder() throws -> String {
        let path = NSTemporaryDirectory() + "raylan-capture-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The shell's pid (its group's id) and its background child's, as `echo $$ $! > file` wrote them.
    static func pids(in file: String) async throws -> (leader: pid_t, grandchild: pid_t) {
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), text.hasSuffix("\n") {
                let pids = text.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
                if pids.count == 2 { return (pids[0], pids[1]) }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSetupError("the test's shell wrote no pids to \(file)")
    }

    /// Whether no process of the group `leader` runs (zombies left out), after waiting up to 5 s; if one still
    /// runs, the test's group is killed so that nothing is left behind.
    static func isGroupGone(_ leader: pid_t) async -> Bool {
        for _ in 0..<100 {
            if !ProcessGroup.processTable().contains(where: { $0.group == leader }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        kill(-leader, SIGKILL)
        return false
    }

    @Test("Exit code, and stdout and stderr together in one output")
    func exitCodeAndOutput() async throws {
        let captured = try await ProcessGroup.capture(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(captured.status == 3)
        #expect(captured.output == "out\nerr\n")
    }

    @Test("The command is reaped when capture returns: no zombie is left")
    func reaped() async throws {
        let captured = try await ProcessGroup.capture(["/bin/sh", "-c", "echo $$"])
        let leader = try #require(pid_t(captured.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        // Our own unreaped child would still answer kill(pid, 0).
        #expect(kill(leader, 0) == -1 && errno == ESRCH, "the command \(leader) is still there (a zombie?)")
    }

    @Test("A command ended by a signal has status 128 + the signal")
    func signal() async throws {
        let captured = try await ProcessGroup.capture(["/bin/sh", "-c", "kill -TERM $$"])
        #expect(captured.status == 128 + SIGTERM)
    }

    @Test("A name is looked up in the given PATH; the environment is the one given; stdin is empty")
    func environmentAndInput() async throws {
        let captured = try await ProcessGroup.capture(
            ["sh", "-c", "cat; echo \"$RAYLAN_CAPTURE_TEST\""],
            environment: ["PATH": "/usr/bin:/bin", "RAYLAN_CAPTURE_TEST": "given"])
        #expect(captured.status == 0)
        #expect(captured.output == "given\n")
    }

    @Test("At the timeout the whole group is killed, a grandchild too, and the output so far is kept")
    func timeoutKillsTheGroup() async throws {
        let folder = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/pids"
        let captured = try await ProcessGroup.capture(
            ["/bin/sh", "-c", "sleep 300 & echo $$ $! > '\(file)'; echo started; sleep 300; :"],
            timeout: .seconds(1))
        let (leader, grandchild) = try await Self.pids(in: file)
        let gone = await Self.isGroupGone(leader)
        #expect(captured.status == nil)
        #expect(captured.output == "started\n")
        #expect(gone, "a process of the group \(leader) (the grandchild \(grandchild) among them) survived the timeout")
        #expect(!ProcessGroup.isAlive(grandchild))
    }

    @Test("Cancelling the caller kills the whole group and throws CancellationError")
    func cancellationKillsTheGroup() async throws {
        let folder = try Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/pids"
        let run = Task {
            try await ProcessGroup.capture(
                ["/bin/sh", "-c", "sleep 300 & echo $$ $! > '\(file)'; sleep 300; :"], timeout: .seconds(300))
        }
        defer { run.cancel() }
        let (leader, grandchild) = try await Self.pids(in: file)
        try #require(ProcessGroup.isAlive(grandchild), "the grandchild must run before the cancellation")
        run.cancel()
        await #expect(throws: CancellationError.self) { try await run.value }
        let gone = await Self.isGroupGone(leader)
        #expect(gone, "a process of the group \(leader) (the grandchild \(grandchild) among them) survived")
        #expect(!ProcessGroup.isAlive(grandchild))
    }

    @Test("A missing executable throws spawnFailed")
    func missingExecutable() async throws {
        let missing = "/nonexistent-\(UUID().uuidString.prefix(8))/tool"
        let error = await #expect(throws: LocalRayError.self) {
            try await ProcessGroup.capture([missing, "--version"])
        }
        #expect(error?.code == .spawnFailed)
        #expect(error?.description.contains(missing) == true)
    }

    @Test("Output over the limit throws outputTooLarge")
    func outputLimit() async throws {
        let error = await #expect(throws: LocalRayError.self) {
            try await ProcessGroup.capture(["/bin/sh", "-c", "head -c 100000 /dev/zero"], outputLimit: 1000)
        }
        #expect(error?.code == .outputTooLarge)
    }
}
