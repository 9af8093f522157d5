#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore

/// This host's IPv4 addresses, and which of them faces a given peer.
public enum HostNetwork {
    /// One IPv4 address of a network interface.
    public struct Interface: Sendable, Hashable, Codable {
        public var name: String
        public var address: String
        public var prefixLength: Int
        public var isLoopback: Bool

        public init(name: String, address: String, prefixLength: Int, isLoopback: Bool) {
            self.name = name
            self.address = address
            self.prefixLength = prefixLength
            self.isLoopback = isLoopback
        }

        /// The network in CIDR form, e.g. `192.168.1.0/24`.
        public var subnet: String {
            guard let value = HostNetwork.number(address) else { return address + "/32" }
            let mask: UInt32 = prefixLength == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefixLength))
            return HostNetwork.text(value & mask) + "/\(prefixLength)"
        }
    }

    /// Every IPv4 address of every interface that is up.
    public static func interfaces() -> [Interface] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [Interface] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            let flags = Int32(entry.pointee.ifa_flags)
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                flags & Int32(IFF_UP) != 0
            else { continue }
            let host = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                UInt32(bigEndian: $0.pointee.sin_addr.s_addr)
            }
            var prefix = 32
            if let netmask = entry.pointee.ifa_netmask {
                let mask = netmask.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    UInt32(bigEndian: $0.pointee.sin_addr.s_addr)
                }
                prefix = mask.nonzeroBitCount
            }
            result.append(
                Interface(
                    name: String(cString: entry.pointee.ifa_name), address: text(host), prefixLength: prefix,
                    isLoopback: flags & Int32(IFF_LOOPBACK) != 0))
        }
        return result
    }

    /// The local address the kernel would use to reach `host` (a UDP socket is connected, nothing is
    /// sent); nil without a route.
    public static func sourceAddress(toward host: String) -> String? {
        guard let target = number(host) else { return nil }
        let descriptor = Sockets.udp()
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = in_port_t(9).bigEndian
        peer.sin_addr.s_addr = target.bigEndian
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return nil }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { return nil }
        return text(UInt32(bigEndian: local.sin_addr.s_addr))
    }

    /// The address this host shows the LAN: the one facing the default route, else the first
    /// non-loopback address. Nil when there is none.
    public static func lanAddress() -> String? {
        // 192.0.2.1 is TEST-NET-1: only the routing table is consulted, no packet is sent.
        if let address = sourceAddress(toward: "192.0.2.1"), !address.hasPrefix("127.") { return address }
        return interfaces().first { !$0.isLoopback }?.address
    }

    /// Every address of this host beyond loopback, each once, in the order the system lists them.
    public static func lanAddresses() -> [String] {
        var seen = Set<String>()
        return interfaces().filter { !$0.isLoopback && seen.insert($0.address).inserted }.map(\.address)
    }

    /// The interface that has `address`.
    public static func interface(with address: String) -> Interface? {
        interfaces().first { $0.address == address }
    }

    /// Whether `host` names this machine (loopback, `localhost`, or one of its addresses).
    public static func isLocal(_ host: String) -> Bool {
        if host == "0.0.0.0" || ClusterAddress.isLoopbackHost(host) { return true }
        return interfaces().contains { $0.address == host }
    }

    /// Whether `host` is a loopback address or `localhost`.
    public static func isLoopback(_ host: String) -> Bool {
        ClusterAddress.isLoopbackHost(host)
    }

    /// Resolves a host name or dotted quad to an IPv4 address; nil when it cannot.
    public static func resolve(_ host: String) -> String? {
        if number(host) != nil { return host }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        guard let address = first.pointee.ai_addr else { return nil }
        let value = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
            UInt32(bigEndian: $0.pointee.sin_addr.s_addr)
        }
        return text(value)
    }

    package static func number(_ address: String) -> UInt32? {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false).map { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ ($0 ?? 256) < 256 }) else { return nil }
        return parts.reduce(0) { $0 << 8 | $1! }
    }

    static func text(_ value: UInt32) -> String {
        [24, 16, 8, 0].map { String((value >> UInt32($0)) & 0xff) }.joined(separator: ".")
    }
}
