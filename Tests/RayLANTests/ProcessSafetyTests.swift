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

/// RayLAN never signals a process it did not start: a recorded pid counts only with its start time, boot
/// and `--temp-dir=` argument; other processes count only with a `--<flag>=<temp dir>` argument; the
/// recorded temp dir is validated before anything is matched or deleted.
@Suite("Process safety: only what RayLAN started is signalled or deleted")
struct ProcessSafetyTests {
    /// Processes a test started (each in a process group of its own), killed by group at the end.
    final class Bystanders: @unchecked Sendable {
        private(set) var groups: [pid_t] = []

        /// Starts `arguments`; returns its pid (also its group).
        func start(_ arguments: [String]) throws -> pid_t {
            let pid = try ProcessGroup.spawn(
                arguments, environment: ProcessInfo.processInfo.environment, logFile: "/dev/null")
            groups.append(pid)
            return pid
        }

        /// Starts `/bin/sh -c 'sleep 1000 & exec sleep 1000'` (`sleep 1000` with a child `sleep 1000`), or, with
        /// an `argument` (the shell's `$0`), `/bin/sh -c 'sleep 1000; :' argument` (a shell with a child
        /// `sleep 1000`); returns the parent and its child, once the child runs.
        func sleeperWithChild(argument name: String? = nil) async throws -> (parent: pid_t, child: pid_t) {
            let parent = try start(
                name.map { ["/bin/sh", "-c", "sleep 1000; :", $0] }
                    ?? ["/bin/sh", "-c", "sleep 1000 & exec sleep 1000"])
            for _ in 0..<100 {
                if let child = ProcessGroup.processTable().first(where: { $0.parent == parent }) {
                    // Wait for the exec: a fork still runs the shell and has its start time, not sleep's.
                    if name != nil
                        || ProcessGroup.processTable().first(where: { $0.pid == parent })?
                            .arguments.first == "sleep"
                    {
                        return (parent, child.pid)
                    }
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestSetupError("the test's sleeper \(parent) did not start a child")
        }

        func killAll() {
            for group in groups {
                kill(-group, SIGKILL)
                ProcessGroup.reap(group)
            }
            groups = []
        }
    }

    static func alive(_ pids: pid_t...) -> Bool { pids.allSatisfy(ProcessGroup.isAlive) }

    /// A new `<parent>/rl-<8 hex>` directory with a file in it.
    static func makeTemporaryDirectory(in parent: String = "/tmp") throws -> String {
        let path = parent + "/rl-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path + "/keep", contents: Data("keep".utf8))
        return path
    }

    /// A record of a local Ray led by `pid`, on a dashboard port where nothing answers.
    static func record(pid: pid_t, leader: ProcessIdentity?, temporaryDirectory: String) throws -> LocalRay {
        let free = try FreePort.pick(10)
        let ports = LocalRay.Ports(
            gcs: free[0], dashboard: free[1], rayClient: free[2], dashboardAgentListen: free[3],
            dashboardAgentGRPC: free[4], metrics: free[5], nodeManager: free[6], objectManager: free[7],
            runtimeEnvAgent: free[8], serve: free[9])
        return LocalRay(
            pid: pid, leader: leader, temporaryDirectory: temporaryDirectory, ports: ports,
            dashboardHost: "127.0.0.1", logFile: temporaryDirectory + "/ray-start.log")
    }

    /// Writes `ray` as the embedded cluster's record in `home` (`local-cluster.json`).
    static func writeEmbedded(_ ray: LocalRay, in home: String, withoutLeader: Bool = false) throws {
        var data = try JSONEncoder().encode(ray)
        if withoutLeader {
            // As an older RayLAN wrote it: no "leader" key at all.
            var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            object["leader"] = nil
            data = try JSONSerialization.data(withJSONObject: object)
        }
        try data.write(to: URL(fileURLWithPath: home + "/local-cluster.json"))
    }

    /// Writes a `raylan up` head record around `ray` in `home` (`node.json`).
    static func writeNode(_ ray: LocalRay, in home: String) throws {
        let node = HostNode(
            role: .head, ray: ray, nodeAddress: "127.0.0.1", headAddress: "127.0.0.1", subnet: "127.0.0.1/32",
            gpus: GPUSelection.Plan(count: 0, visibleDevices: nil, devices: [], logicalOnly: false, summary: "none"),
            tokenSource: nil, versions: RayEnvironment.Versions(ray: "2.60.0", python: "3.12"),
            rayExecutable: "/nonexistent/ray", warnings: [], startedAt: Date())
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(node).write(to: URL(fileURLWithPath: home + "/node.json"))
    }

    /// How a record of a live process can fail to prove that the process is RayLAN's Ray.
    enum Staleness: String, CaseIterable, CustomTestStringConvertible {
        case otherStartTime, otherBoot, noMarker, olderRecord
        var testDescription: String { rawValue }
    }

    @Test(
        "A stale record of a live process (and its child): 'raylan status' and 'raylan down' say so and signal nothing",
        arguments: Staleness.allCases)
    func staleRecordSignalsNothing(_ staleness: Staleness) async throws {
        let bystanders = Bystanders()
        defer { bystanders.killAll() }
        let home = try TestEnvironment.makeTemporaryDirectory("raylan-home").path
        let temporary = try Self.makeTemporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: home)
            try? FileManager.default.removeItem(atPath: temporary)
        }
        // `sleep 1000` with a child; with a marker, a shell whose argv carries --temp-dir=<the record's dir>.
        let (parent, child) = try await bystanders.sleeperWithChild(
            argument: staleness == .noMarker ? nil : "--temp-dir=\(temporary)")
        let identity = try #require(ProcessIdentity.of(parent))
        let leader: ProcessIdentity? =
            switch staleness {
            case .otherStartTime: ProcessIdentity(startTime: identity.startTime + 1, bootID: identity.bootID)
            case .otherBoot: ProcessIdentity(startTime: identity.startTime, bootID: UUID().uuidString.lowercased())
            case .noMarker: identity
            case .olderRecord: nil
            }
        let ray = try Self.record(pid: parent, leader: leader, temporaryDirectory: temporary)
        let environment: [String: String?] = ["RAYLAN_HOME": home, "RAYLAN_PYTHON": "/nonexistent/python"]

        // 'raylan status' finds the record, removes it as stale, then fails for want of Python (no Ray started).
        try Self.writeEmbedded(ray, in: home, withoutLeader: staleness == .olderRecord)
        let status = try await CommandRunner.raylan(["status"], environment: environment)
        #expect(status.stderr.contains("Stale record removed (\(home)/local-cluster.json): pid \(parent)"), "\(status)")
        #expect(status.stderr.contains("No process was signalled"), "\(status)")
        #expect(status.stderr.contains("/nonexistent/python"), "\(status)")
        #expect(Self.alive(parent, child), "'raylan status' ended a process RayLAN did not start")
        #expect(!FileManager.default.fileExists(atPath: home + "/local-cluster.json"))

        // 'raylan down' with the same record as the embedded cluster's and as 'raylan up''s node.
        try Self.writeEmbedded(ray, in: home, withoutLeader: staleness == .olderRecord)
        if staleness != .olderRecord { try Self.writeNode(ray, in: home) }
        let down = try await CommandRunner.raylan(["down"], environment: environment)
        #expect(down.status == 0, "\(down)")
        #expect(down.stderr.contains("Stale record removed (\(home)/local-cluster.json): pid \(parent)"), "\(down)")
        if staleness != .olderRecord {
            #expect(down.stderr.contains("Stale record removed (\(home)/node.json): pid \(parent)"), "\(down)")
        }
        #expect(down.stdout.contains("No Ray started by RayLAN is running"), "\(down)")
        #expect(Self.alive(parent, child), "'raylan down' ended a process RayLAN did not start")
        #expect(FileManager.default.fileExists(atPath: temporary + "/keep"), "the temp dir was deleted")
        #expect(!FileManager.default.fileExists(atPath: home + "/local-cluster.json"))
        #expect(!FileManager.default.fileExists(atPath: home + "/node.json"))
    }

    /// A recorded temp dir that RayLAN did not make, each pointing at a real directory that must survive.
    enum BadDirectory: String, CaseIterable, CustomTestStringConvertible {
        case dotDot, otherOwner, link, otherName
        var testDescription: String { rawValue }
    }

    @Test(
        "A record whose temp dir is not RayLAN's: stale although its leader matches; nothing signalled or deleted",
        arguments: BadDirectory.allCases)
    func invalidTemporaryDirectory(_ bad: BadDirectory) async throws {
        let bystanders = Bystanders()
        defer { bystanders.killAll() }
        let home = try TestEnvironment.makeTemporaryDirectory("raylan-home").path
        let sandbox = try TestEnvironment.makeTemporaryDirectory("raylan-sandbox").path
        defer {
            try? FileManager.default.removeItem(atPath: home)
            try? FileManager.default.removeItem(atPath: sandbox)
        }
        let target: String  // the real directory that must survive
        let recorded: String
        switch bad {
        case .dotDot:
            target = try Self.makeTemporaryDirectory(in: sandbox)
            try FileManager.default.createDirectory(atPath: sandbox + "/sub", withIntermediateDirectories: true)
            recorded = sandbox + "/sub/../" + (target as NSString).lastPathComponent
        case .otherOwner:
            try #require(geteuid() == 0, "giving a directory to 'nobody' needs root")
            target = try Self.makeTemporaryDirectory(in: sandbox)
            try #require(chown(target, 65534, 65534) == 0)
            recorded = target
        case .link:
            target = sandbox + "/target"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: target + "/keep", contents: Data())
            recorded = sandbox + "/rl-" + UUID().uuidString.prefix(8).lowercased()
            try FileManager.default.createSymbolicLink(atPath: recorded, withDestinationPath: target)
        case .otherName:
            target = sandbox + "/raylan-tmp"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: target + "/keep", contents: Data())
            recorded = target
        }
        // The leader is right in every other way: its start time, boot and exact --temp-dir= argument.
        let (parent, child) = try await bystanders.sleeperWithChild(argument: "--temp-dir=\(recorded)")
        let ray = try Self.record(pid: parent, leader: ProcessIdentity.of(parent), temporaryDirectory: recorded)
        try Self.writeEmbedded(ray, in: home)

        let down = try await CommandRunner.raylan(["down"], environment: ["RAYLAN_HOME": home])
        #expect(down.status == 0, "\(down)")
        #expect(down.stderr.contains("Stale record removed"), "\(down)")
        #expect(down.stderr.contains("is not RayLAN's"), "\(down)")
        #expect(Self.alive(parent, child), "'raylan down' ended a process RayLAN did not start")
        #expect(FileManager.default.fileExists(atPath: target + "/keep"), "\(target) was deleted")
        #expect(FileManager.default.fileExists(atPath: recorded), "\(recorded) was deleted")
    }

    @Test(
        "Only RayLAN's temp dirs are accepted",
        arguments: [
            "/", "", "tmp/rl-0123abcd", "/tmp/rl-../x", "/tmp/x/../rl-0123abcd", "/tmp/./rl-0123abcd",
            "/tmp//rl-0123abcd", "/tmp/rl-0123abcd/", "/tmp/rl-0123ABCD", "/tmp/rl-0123abc", "/tmp/rl-0123abcde",
            "/tmp/rl-other-0123ab", "/tmp/rl-0123abcg",
        ])
    func temporaryDirectoryFormat(_ path: String) {
        #expect(ProcessGroup.temporaryDirectoryProblem(path) != nil)
    }

    @Test("A temp dir as RayLAN makes it is accepted; once gone, it is not")
    func temporaryDirectoryAccepted() throws {
        let temporary = try Self.makeTemporaryDirectory()
        #expect(ProcessGroup.temporaryDirectoryProblem(temporary) == nil)
        try FileManager.default.removeItem(atPath: temporary)
        #expect(ProcessGroup.temporaryDirectoryProblem(temporary) == "it does not exist")
    }

    @Test(
        "A process joins the cluster only through a --<flag>=<temp dir> argument",
        arguments: [
            ("--temp-dir=/tmp/rl-0123abcd", true), ("--session-dir=/tmp/rl-0123abcd/session_1", true),
            ("--log_dir=/tmp/rl-0123abcd/session_1/logs", true), ("/tmp/rl-0123abcd", false),
            ("/tmp/rl-0123abcd/session_latest/logs/raylet.out", false), ("--temp-dir=/tmp/rl-0123abcd0", false),
            ("--temp-dir=/tmp/rl-0123abcd-x/y", false), ("--=/tmp/rl-0123abcd", false),
            ("-x=/tmp/rl-0123abcd", false), ("--a b=/tmp/rl-0123abcd", false), ("x--temp-dir=/tmp/rl-0123abcd", false),
            ("--temp-dir=x/tmp/rl-0123abcd", false),
        ])
    func flagArgument(_ argument: String, carries: Bool) {
        #expect(ProcessGroup.carries(argument, directory: "/tmp/rl-0123abcd") == carries)
    }

    @Test("Old records (without the leader's identity) still decode")
    func olderRecordDecodes() throws {
        let ray = try Self.record(pid: 1, leader: nil, temporaryDirectory: "/tmp/rl-0123abcd")
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(ray)) as? [String: Any])
        object["leader"] = nil
        let decoded = try JSONDecoder().decode(LocalRay.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(decoded.pid == 1 && decoded.leader == nil)
        #expect(decoded.staleness()?.reason.contains("older RayLAN") == true)
        #expect(!decoded.isRunning && decoded.processIDs.isEmpty)
    }

    @Test(
        """
        A proven leader is stopped with its descendants and its flag-carrying leftovers; processes that only name \
        the temp dir, carry a lookalike, or started before the leader survive
        """)
    func membersWithoutRay() async throws {
        let bystanders = Bystanders()
        defer { bystanders.killAll() }
        let temporary = try Self.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        // Older than the leader: carries the flag, yet cannot be the cluster's.
        let older = try await bystanders.sleeperWithChild(argument: "--temp-dir=\(temporary)")
        try await Task.sleep(for: .milliseconds(100))  // start times count in clock ticks (10 ms)
        let leader = try await bystanders.sleeperWithChild(argument: "--temp-dir=\(temporary)")
        try await Task.sleep(for: .milliseconds(100))
        // A leftover in a group of its own, as Ray's processes whose parent has gone.
        let leftover = try await bystanders.sleeperWithChild(argument: "--session-dir=\(temporary)/session_1")
        let plainPath = try await bystanders.sleeperWithChild(argument: temporary)
        let lookalike = try await bystanders.sleeperWithChild(argument: "--temp-dir=\(temporary)0")
        let tail = try bystanders.start(["/usr/bin/tail", "-f", temporary + "/keep"])
        let ray = try Self.record(
            pid: leader.parent, leader: ProcessIdentity.of(leader.parent), temporaryDirectory: temporary)
        #expect(Set(ray.processIDs) == [leader.parent, leader.child, leftover.parent, leftover.child])

        let stale = await ray.stop()
        #expect(stale == nil)
        for pid in [leader.parent, leader.child, leftover.parent, leftover.child] {
            ProcessGroup.reap(pid)
            #expect(!ProcessGroup.isAlive(pid), "member \(pid) survived")
        }
        #expect(Self.alive(older.parent, older.child, plainPath.parent, plainPath.child))
        #expect(Self.alive(lookalike.parent, lookalike.child))
        #expect(Self.alive(tail))
        #expect(!FileManager.default.fileExists(atPath: temporary))
    }
}

extension OwnClusterTests {
    @Suite("Process safety with a real embedded Ray")
    struct ProcessSafetyClusterTests {
        @Test(
            """
            After a stale record 'raylan status' starts a fresh Ray; 'raylan down' ends all of it, while a \
            'tail -f' of its log and a process naming its temp dir live on
            """)
        func bystandersSurviveDown() async throws {
            let bystanders = ProcessSafetyTests.Bystanders()
            defer { bystanders.killAll() }
            let home = try TestEnvironment.makeTemporaryDirectory("raylan-home").path
            defer { try? FileManager.default.removeItem(atPath: home) }
            let environment: [String: String?] = [
                "RAYLAN_HOME": home, "RAYLAN_PYTHON": try TestEnvironment.environment(.current).python,
            ]
            let embedded = EmbeddedCluster(stateDirectory: home)
            do {
                // A record left from before a restart: its pid now names someone else's `sleep` with a child.
                let sleeper = try await bystanders.sleeperWithChild()
                let identity = try #require(ProcessIdentity.of(sleeper.parent))
                let temporary = try ProcessSafetyTests.makeTemporaryDirectory()
                defer { try? FileManager.default.removeItem(atPath: temporary) }
                try ProcessSafetyTests.writeEmbedded(
                    ProcessSafetyTests.record(
                        pid: sleeper.parent, leader: ProcessIdentity(startTime: identity.startTime, bootID: "before"),
                        temporaryDirectory: temporary),
                    in: home)

                let status = try await CommandRunner.raylan(["status"], environment: environment)
                #expect(status.status == 0, "\(status)")
                #expect(status.stderr.contains("Stale record removed"), "\(status)")
                #expect(status.stderr.contains("the machine has restarted since"), "\(status)")
                #expect(status.stderr.contains("Starting a private local Ray"), "\(status)")
                #expect(status.stdout.contains("ALIVE"))
                #expect(ProcessSafetyTests.alive(sleeper.parent, sleeper.child), "'raylan status' ended a stranger")

                let ray = try #require(embedded.recorded())
                #expect(ray.leader != nil && ray.isRunning)
                let members = ray.processIDs
                #expect(members.count > 3)
                // A user's processes that name the cluster's temp dir without being Ray's.
                let tail = try bystanders.start(["/usr/bin/tail", "-f", ray.logFile])
                let named = try await bystanders.sleeperWithChild(argument: ray.temporaryDirectory)
                #expect(Set(ray.processIDs).isDisjoint(with: [tail, named.parent, named.child]))

                let down = try await CommandRunner.raylan(["down"], environment: environment)
                #expect(down.status == 0, "\(down)")
                #expect(down.stdout.contains("Stopped the local Ray"), "\(down)")
                #expect(!down.stderr.contains("Stale"), "\(down)")
                #expect(members.allSatisfy { !ProcessGroup.isAlive($0) }, "a process of the cluster survived")
                #expect(!FileManager.default.fileExists(atPath: ray.temporaryDirectory))
                #expect(ProcessSafetyTests.alive(tail, named.parent, named.child), "'raylan down' ended a bystander")
                #expect(ProcessSafetyTests.alive(sleeper.parent, sleeper.child))
            } catch {
                _ = try? await embedded.stop()
                throw error
            }
            _ = try? await embedded.stop()
        }
    }
}
