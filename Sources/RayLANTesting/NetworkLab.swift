#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import RayLAN

/// A simulated LAN on this Linux machine: one network namespace per host, all joined by a bridge (in a
/// namespace of its own), each host also with its own PID and mount namespace so that `ps` and `/proc`
/// show only its processes, as on a real machine. Addresses are 10.77.N.1… inside these namespaces
/// only; nothing is added to the machine's own network.
///
/// Everything is torn down by ``destroy()``: each host's PID namespace is ended by killing its init
/// (the kernel then kills every process in it, whatever a test left running) and the namespaces are
/// deleted.
public final class NetworkLab: Sendable {
    public struct Host: Sendable, Hashable {
        public let name: String
        public let address: String
        let namespace: String
        /// PID 1 of the host's PID namespace, as this machine numbers it.
        let initPID: Int32
        /// The `unshare` process that made the namespace (our child).
        let launcher: Int32
    }

    public let hosts: [String: Host]
    /// `10.77.N.0/24`.
    public let subnet: String
    let bridgeNamespace: String

    public subscript(name: String) -> Host { hosts[name]! }

    init(hosts: [String: Host], subnet: String, bridgeNamespace: String) {
        self.hosts = hosts
        self.subnet = subnet
        self.bridgeNamespace = bridgeNamespace
    }

    /// Why a lab cannot be built here (not Linux, not root, tools missing, namespaces refused); nil when it can.
    public static let unavailableReason: String? = {
        #if os(Linux)
            guard geteuid() == 0 else { return "network namespaces need root (CI runs as root)" }
            for name in ["ip", "unshare", "nsenter", "nft", "ss", "tcpdump"] where tool(name) == nil {
                return "'\(name)' is missing (scripts/test.sh installs iproute2, util-linux, nftables and tcpdump)"
            }
            let probe = "rlprobe\(getpid())"
            let added = run(["ip", "netns", "add", probe])
            _ = run(["ip", "netns", "del", probe])
            return added == 0 ? nil : "'ip netns add' failed: this machine does not allow network namespaces"
        #else
            return "network namespaces are Linux only"
        #endif
    }()

    /// Whether a lab must be built: always, unless `RAYLAN_SKIP_LAN=1` is set. A test that cannot build one
    /// fails with ``unavailableReason``; only that variable turns the failure into a skip, which says so.
    public static var isRequired: Bool { ProcessInfo.processInfo.environment["RAYLAN_SKIP_LAN"] != "1" }

    /// Builds a lab with one host per name (addresses .1, .2, … in name order), runs `body`, and tears
    /// the lab down, also when `body` throws.
    public static func with<Result: Sendable>(
        _ names: [String], _ body: (NetworkLab) async throws -> Result
    ) async throws -> Result {
        let lab = try await create(names)
        do {
            let result = try await body(lab)
            await lab.destroy()
            return result
        } catch {
            await lab.destroy()
            throw error
        }
    }

    static func create(_ names: [String]) async throws -> NetworkLab {
        let tag = "rl" + String(UInt32(getpid()) % 1296, radix: 36) + String(Int.random(in: 10...99))
        let subnet = Int.random(in: 1...250)
        let bridge = tag + "-lan"
        var hosts: [String: Host] = [:]
        var commands: [[String]] = [
            ["ip", "netns", "add", bridge],
            ["ip", "-n", bridge, "link", "set", "lo", "up"],
            ["ip", "-n", bridge, "link", "add", "br0", "type", "bridge"],
            ["ip", "-n", bridge, "link", "set", "br0", "up"],
        ]
        for (index, name) in names.enumerated() {
            let namespace = "\(tag)-\(name)"
            let inside = "\(tag)h\(index)"
            let outside = "\(tag)b\(index)"
            let address = "10.77.\(subnet).\(index + 1)"
            commands += [
                ["ip", "netns", "add", namespace],
                ["ip", "link", "add", inside, "type", "veth", "peer", "name", outside],
                ["ip", "link", "set", inside, "netns", namespace],
                ["ip", "link", "set", outside, "netns", bridge],
                ["ip", "-n", bridge, "link", "set", outside, "master", "br0"],
                ["ip", "-n", bridge, "link", "set", outside, "up"],
                ["ip", "-n", namespace, "link", "set", "lo", "up"],
                ["ip", "-n", namespace, "addr", "add", "\(address)/24", "dev", inside],
                ["ip", "-n", namespace, "link", "set", inside, "up"],
                // A default route as a real LAN host has (Ray looks up its own address through it); with
                // no gateway on the bridge, nothing leaves these namespaces.
                ["ip", "-n", namespace, "route", "add", "default", "dev", inside],
            ]
            hosts[name] = Host(name: name, address: address, namespace: namespace, initPID: 0, launcher: 0)
        }
        let lab = NetworkLab(hosts: hosts, subnet: "10.77.\(subnet).0/24", bridgeNamespace: bridge)
        for command in commands where run(command) != 0 {
            await lab.destroy()
            throw TestSetupError("Building the test LAN failed at: \(command.joined(separator: " "))")
        }
        // One PID namespace per host, its init a sleep that lives until destroy().
        var started: [String: Host] = [:]
        for (name, host) in hosts {
            let launcher = try ProcessGroup.spawn(
                [
                    tool("ip")!, "netns", "exec", host.namespace, tool("unshare")!, "--pid", "--fork", "--kill-child",
                    "--mount", "--mount-proc", "sleep", "infinity",
                ],
                environment: ProcessInfo.processInfo.environment, logFile: "/dev/null")
            var child: Int32?
            for _ in 0..<100 {
                let text =
                    (try? String(contentsOfFile: "/proc/\(launcher)/task/\(launcher)/children", encoding: .utf8)) ?? ""
                if let pid = text.split(separator: " ").first.flatMap({ Int32($0) }) {
                    child = pid
                    break
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            let host = Host(
                name: name, address: host.address, namespace: host.namespace, initPID: child ?? 0, launcher: launcher)
            started[name] = host
            guard child != nil else {
                await NetworkLab(hosts: started, subnet: lab.subnet, bridgeNamespace: bridge).destroy()
                throw TestSetupError("The PID namespace of test host '\(name)' did not start")
            }
        }
        return NetworkLab(hosts: started, subnet: lab.subnet, bridgeNamespace: bridge)
    }

    /// Runs a command on `host` (inside its network, PID and mount namespaces).
    public func run(
        on host: String, _ executable: String, _ arguments: [String], environment: [String: String?] = [:],
        timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        let host = self[host]
        return try await CommandRunner.run(
            Self.tool("nsenter")!, ["-t", String(host.initPID), "-p", "-m", "-n", "--", executable] + arguments,
            environment: environment, timeout: timeout)
    }

    /// Runs `raylan` on `host` with `RAYLAN_HOME` = `home` (each host keeps its own state, as on a real
    /// machine) and no address or token from this process's environment.
    public func raylan(
        on host: String, _ arguments: [String], home: String, environment: [String: String?] = [:],
        timeout: Duration = .seconds(300)
    ) async throws -> CommandResult {
        var merged: [String: String?] = [
            "RAYLAN_HOME": home, "RAYLAN_ADDRESS": nil, "RAY_AUTH_TOKEN": nil, "RAY_AUTH_TOKEN_PATH": nil,
        ]
        merged.merge(environment) { _, new in new }
        return try await run(
            on: host, TestEnvironment.raylanExecutable, arguments, environment: merged, timeout: timeout)
    }

    /// Starts capturing the packets on the LAN's bridge that match `filter` (tcpdump's syntax, e.g. `host
    /// 10.77.1.3`) into `file` (pcap, each packet written as it comes); stop it with ``Capture/stop()``, which
    /// returns the file's bytes.
    public func capture(_ filter: String, to file: String) async throws -> Capture {
        let command = try RunningCommand(
            Self.tool("ip")!,
            ["netns", "exec", bridgeNamespace, Self.tool("tcpdump")!, "-i", "br0", "-U", "-s", "0", "-w", file]
                + filter.split(separator: " ").map(String.init))
        // tcpdump says "listening on br0" once its capture is open.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(20))
        while !((try? String(contentsOfFile: command.errFile, encoding: .utf8)) ?? "").contains("listening on"),
            clock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        return Capture(command: command, file: file)
    }

    /// A running packet capture (``capture(_:to:)``).
    public struct Capture: Sendable {
        let command: RunningCommand
        public let file: String

        /// Ends the capture and returns the captured bytes (pcap headers and packets).
        public func stop() async throws -> Data {
            kill(command.pid, SIGINT)
            _ = await command.wait(timeout: .seconds(30))
            return try Data(contentsOf: URL(fileURLWithPath: file))
        }
    }

    /// Ends every process of every host (by killing each PID namespace's init) and deletes the namespaces.
    public func destroy() async {
        for host in hosts.values where host.initPID > 0 {
            kill(host.initPID, SIGKILL)
        }
        for host in hosts.values where host.launcher > 0 {
            for _ in 0..<100 {
                if ProcessGroup.exitStatus(host.launcher) != nil || !ProcessGroup.isAlive(host.launcher) { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        for host in hosts.values { _ = Self.run(["ip", "netns", "del", host.namespace]) }
        _ = Self.run(["ip", "netns", "del", bridgeNamespace])
    }

    /// The path of a system tool, or nil.
    static func tool(_ name: String) -> String? {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map { "\($0)/\(name)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Runs a short system command and returns its exit status.
    @discardableResult
    static func run(_ command: [String]) -> Int32 {
        guard let path = tool(command[0]),
            let pid = try? ProcessGroup.spawn(
                [path] + command.dropFirst(), environment: ProcessInfo.processInfo.environment, logFile: "/dev/null")
        else { return -1 }
        while true {
            if let status = ProcessGroup.exitStatus(pid) { return status }
            usleep(10_000)
        }
    }
}
