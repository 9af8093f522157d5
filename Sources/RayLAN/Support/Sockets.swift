#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// IPv4 sockets that child processes do not inherit: a test or a command that spawns Ray while it holds
/// a socket must not leave that socket (a bound port, a listener) alive in the child.
enum Sockets {
    /// A TCP socket with close-on-exec set; -1 on failure.
    static func tcp() -> Int32 {
        #if canImport(Glibc)
        return socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        return closeOnExec(socket(AF_INET, SOCK_STREAM, 0))
        #endif
    }

    /// A UDP socket with close-on-exec set; -1 on failure.
    static func udp() -> Int32 {
        #if canImport(Glibc)
        return socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        return closeOnExec(socket(AF_INET, SOCK_DGRAM, 0))
        #endif
    }

    static func closeOnExec(_ fd: Int32) -> Int32 {
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }
}
