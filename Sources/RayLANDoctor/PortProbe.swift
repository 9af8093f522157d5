#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Dispatch
import Foundation
import RayLAN

/// A TCP connect to one port, telling an open port from a refused one (nothing listens, or a firewall
/// rejects) and from a silent drop (a firewall discards the packets, so the connect times out).
public struct PortProbe: Sendable, Hashable, Codable {
    public enum Outcome: String, Sendable, Hashable, Codable {
        /// Connected.
        case open
        /// RST or ICMP port-unreachable: nothing listens there, or a firewall rejects.
        case refused
        /// No answer before the timeout: a firewall drops the packets, or the host is down.
        case dropped
        /// No route, host unreachable, or the name does not resolve.
        case unreachable
    }

    public var host: String
    public var port: Int
    public var outcome: Outcome
    /// Milliseconds until the outcome was known.
    public var milliseconds: Double
    /// The system's words for a failure.
    public var reason: String?

    /// Connects to `host`:`port` (IPv4) on a dispatch thread, never blocking Swift's cooperative pool.
    public static func probe(host: String, port: Int, timeout: Duration = .seconds(3)) async -> PortProbe {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: connectNow(host: host, port: port, timeout: timeout))
            }
        }
    }

    static func connectNow(host: String, port: Int, timeout: Duration) -> PortProbe {
        let start = ContinuousClock.now
        func result(_ outcome: Outcome, _ reason: String? = nil) -> PortProbe {
            PortProbe(
                host: host, port: port, outcome: outcome, milliseconds: (ContinuousClock.now - start).seconds * 1000,
                reason: reason)
        }
        guard let address = HostNetwork.resolve(host), let number = HostNetwork.number(address) else {
            return result(.unreachable, "cannot resolve \(host)")
        }
        let fd = Sockets.tcp()
        guard fd >= 0 else { return result(.unreachable, String(cString: strerror(errno))) }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = in_port_t(UInt16(port)).bigEndian
        peer.sin_addr.s_addr = number.bigEndian
        let started = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var error = started == 0 ? 0 : errno
        if started != 0 && error == EINPROGRESS {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let milliseconds = Int32(timeout.seconds * 1000)
            let ready = poll(&poller, 1, milliseconds)
            if ready == 0 { return result(.dropped, "no answer in \(timeout)") }
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length)
            error = value
        }
        if error == 0 {
            // A port in the ephemeral range with no listener can be "reached" by the socket itself (TCP
            // simultaneous open with the same port as source): that is a refusal, not an open port.
            var local = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            if named == 0 && local.sin_port == peer.sin_port && local.sin_addr.s_addr == peer.sin_addr.s_addr {
                return result(.refused, "nothing listens (the socket connected to itself)")
            }
        }
        switch error {
        case 0: return result(.open)
        case ECONNREFUSED: return result(.refused, "connection refused")
        case ETIMEDOUT: return result(.dropped, "timed out")
        default: return result(.unreachable, String(cString: strerror(error)))
        }
    }
}
