#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import RayLANCore

/// Free TCP ports, asked of the kernel by binding.
enum FreePort {
    /// `count` distinct free ports on the loopback interface. They are free now; a race with another
    /// program is possible.
    static func pick(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        var ports: [Int] = []
        while ports.count < count {
            guard let (fd, port) = bindSocket(address: "127.0.0.1", port: 0) else {
                throw LocalRayError(
                    .noFreePort, "Cannot bind a socket on 127.0.0.1 to find a free port",
                    remedy: "Check that the loopback interface is up and that this process may open sockets.")
            }
            sockets.append(fd)
            // Ray's worker ports default to 10002-19999: keep ours out of that range.
            if !(10002...19999).contains(port) && !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    /// Whether TCP `port` can be bound on `address` now (`0.0.0.0` for every interface).
    static func isFree(_ port: Int, on address: String) -> Bool {
        guard let (fd, _) = bindSocket(address: address, port: port) else { return false }
        close(fd)
        return true
    }

    /// A TCP socket bound to `address`:`port` (0: any free port) and the port it got; nil when binding fails.
    /// With `reuseAddress` (`SO_REUSEADDR`) it binds past connections in TIME_WAIT, and another socket that sets
    /// it too may bind the same port while neither listens; without it, no other socket can.
    static func bindSocket(address text: String, port: Int, reuseAddress: Bool = true) -> (Int32, Int)? {
        let fd = Sockets.tcp()
        guard fd >= 0 else { return nil }
        if reuseAddress {
            var reuse: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr(text)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            close(fd)
            return nil
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
