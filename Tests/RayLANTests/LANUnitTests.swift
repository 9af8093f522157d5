#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import RayLAN
import RayLANDoctor
import Testing

@Suite("LAN set-up without Ray: GPU selection, pinned ports, firewall rules, port probes")
struct LANUnitTests {
    static let twoGPUs = [
        GPUSelection.DetectedGPU(index: 0, name: "NVIDIA H100", memoryMiB: 81_559),
        GPUSelection.DetectedGPU(index: 1, name: "NVIDIA H100", memoryMiB: 81_559),
    ]

    @Test("--gpus forms: all, a count, indices; bad forms are usage errors naming the accepted ones")
    func gpuParsing() throws {
        #expect(try GPUSelection(parsing: "all") == .all)
        #expect(try GPUSelection(parsing: "2") == .count(2))
        #expect(try GPUSelection(parsing: "0,1") == .devices([0, 1]))
        #expect(try GPUSelection(parsing: "1,") == .devices([1]))
        for bad in ["", "two", "-1", "0,x", "1.5"] {
            let error = #expect(throws: HostNodeError.self) { try GPUSelection(parsing: bad) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.isUsageError == true)
            #expect(error?.remedy?.contains("--gpus all") == true)
        }
    }

    @Test("GPU plans: CUDA_VISIBLE_DEVICES and --num-gpus from what nvidia-smi shows; none is a CPU node")
    func gpuPlans() throws {
        let all = try GPUSelection.all.plan(detected: Self.twoGPUs)
        #expect(all.count == 2 && all.visibleDevices == nil && !all.logicalOnly)
        let cpu = try GPUSelection.all.plan(detected: [])
        #expect(cpu.count == 0 && cpu.summary.contains("CPU node"))
        let second = try GPUSelection.devices([1]).plan(detected: Self.twoGPUs)
        #expect(second.count == 1 && second.visibleDevices == "1" && second.devices.map(\.index) == [1])
        let first = try GPUSelection.count(1).plan(detected: Self.twoGPUs)
        #expect(first.visibleDevices == "0")
        let none = try GPUSelection.count(0).plan(detected: Self.twoGPUs)
        #expect(none.count == 0 && none.visibleDevices == "")
        let logical = try GPUSelection.count(1).plan(detected: [])
        #expect(logical.count == 1 && logical.logicalOnly)
        let tooMany = #expect(throws: HostNodeError.self) { try GPUSelection.count(3).plan(detected: Self.twoGPUs) }
        #expect(tooMany?.code == .invalidArgument)
        let missing = #expect(throws: HostNodeError.self) {
            try GPUSelection.devices([0, 5]).plan(detected: Self.twoGPUs)
        }
        #expect(missing?.code == .invalidArgument)
    }

    @Test("The pinned layout follows --port, and the firewall rules cover exactly its LAN-facing ports")
    func pinnedPorts() {
        let ports = LocalRay.Ports.pinned(gcs: 7000, dashboard: 9265, serve: 9000)
        let node = [
            ports.nodeManager, ports.objectManager, ports.runtimeEnvAgent, ports.dashboardAgentGRPC,
            ports.dashboardAgentListen, ports.metrics,
        ]
        #expect(Set(node) == Set(7001...7006))
        #expect(ports.workers == 10002...10999)
        let opened = Set(ports.openings.flatMap { $0.first...$0.last })
        #expect(opened == Set(7000...7006).union([9265, 9000]).union(10001...10999))
        #expect(!opened.contains(ports.autoscalerMetrics!) && !opened.contains(ports.dashboardMetrics!))
        let ufw = ports.ufwRules(from: "192.168.1.0/24")
        #expect(ufw.contains("sudo ufw allow proto tcp from 192.168.1.0/24 to any port 7000:7006"), "\(ufw)")
        #expect(ufw.contains("sudo ufw allow proto tcp from 192.168.1.0/24 to any port 10001:10999"), "\(ufw)")
        let firewalld = ports.firewalldRules(from: "192.168.1.0/24")
        #expect(firewalld.last == "sudo firewall-cmd --reload")
        #expect(
            firewalld.contains { $0.contains("port port=\"9265\"") && $0.contains("source address=\"192.168.1.0/24\"") }
        )
    }

    @Test("Port probes tell an open port from a refused one")
    func portProbe() async throws {
        // A socket of our own on loopback, on a port below the ephemeral range (so that a probe's own source
        // port can never be it). While it is bound and not listening, a connection is refused, and no other
        // process can take the port; then it listens and the same port is open.
        var listener: Int32 = -1
        var port = 0
        for candidate in 20_000..<20_500 {
            // Close-on-exec: other tests spawn processes meanwhile, which must not inherit the listener.
            #if os(Linux)
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            #else
                let fd = socket(AF_INET, SOCK_STREAM, 0)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            #endif
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(candidate)).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if bound == 0 {
                listener = fd
                port = candidate
                break
            }
            close(fd)
        }
        try #require(listener >= 0, "no free port in 20000–20499")
        defer { close(listener) }
        let refused = await PortProbe.probe(host: "127.0.0.1", port: port)
        try #require(listen(listener, 1) == 0)
        let open = await PortProbe.probe(host: "127.0.0.1", port: port)
        #expect(refused.outcome == .refused, "\(refused)")
        #expect(open.outcome == .open, "\(open)")
    }

    @Test("Subnets come from an interface's prefix")
    func subnets() {
        let interface = HostNetwork.Interface(
            name: "eth0", address: "192.168.1.130", prefixLength: 24, isLoopback: false)
        #expect(interface.subnet == "192.168.1.0/24")
        let wide = HostNetwork.Interface(name: "eth0", address: "10.1.2.3", prefixLength: 16, isLoopback: false)
        #expect(wide.subnet == "10.1.0.0/16")
        #expect(HostNetwork.interfaces().contains { $0.isLoopback && $0.address == "127.0.0.1" })
        #expect(HostNetwork.isLocal("127.0.0.1") && !HostNetwork.isLocal("192.0.2.1"))
    }
}
