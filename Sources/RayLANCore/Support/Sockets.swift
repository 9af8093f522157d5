#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// IPv4 sockets that child processes do not inherit: a test or a command that spawns Ray while it holds
/// a socket must not leave that socket (a bound port, a listener) alive in the child.
package enum Sockets {
    /// A TCP socket with close-on-exec set; -1 on failure.
    package static func tcp() -> Int32 { make(stream: true) }

    /// A UDP socket with close-on-exec set; -1 on failure.
    package static func udp() -> Int32 { make(stream: false) }

    private static func make(stream: Bool) -> Int32 {
        #if canImport(Glibc)
            let type = stream ? SOCK_STREAM : SOCK_DGRAM
            return socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, stream ? SOCK_STREAM : SOCK_DGRAM, 0)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return fd
        #endif
    }
}
