#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// A loopback port that refuses connections for as long as the test holds it: a socket keeps it bound but
/// never listens, so a connection to it is refused, and no other server can take it meanwhile.
///
/// A port picked free and closed again is no such port. The kernel may hand it to the next `bind(0)` at once,
/// and tests run side by side: a fake server started by another test took such a port, so one test's
/// "connection refused" got an answer and the fake server's first planned answer went to the wrong client.
/// A free port is held without `SO_REUSEADDR`, so that no other socket can share it. A given port, taken back
/// from a server that stopped, is held with it (the server's connections leave the port in TIME_WAIT): then only a
/// server that asks for that very port with `SO_REUSEADDR` could share it, and `bind(0)`, which fake servers use,
/// never picks a port that a socket holds.
final class ClosedPort: Sendable {
    let port: Int
    private let socket: Int32

    /// Holds `port`, or a free port where `port` is 0.
    init(_ port: Int = 0) throws {
        guard let (fd, bound) = FreePort.bindSocket(address: "127.0.0.1", port: port, reuseAddress: port != 0)
        else { throw ClosedPortError() }
        socket = fd
        self.port = bound
    }

    deinit { close(socket) }

    /// Runs `body` with a closed port, which stays closed, and nobody else's, until `body` returns.
    static func with<R>(_ port: Int = 0, _ body: (Int) async throws -> R) async throws -> R {
        let closed = try ClosedPort(port)
        defer { withExtendedLifetime(closed) {} }
        return try await body(closed.port)
    }

    struct ClosedPortError: Error, CustomStringConvertible {
        var description: String { "Cannot hold a closed port on 127.0.0.1 (taken by another program?)" }
    }
}
