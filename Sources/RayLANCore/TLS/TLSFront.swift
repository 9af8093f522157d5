import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// The head's TLS front: it takes TLS connections on the LAN and relays their bytes, decrypted, to a server on
/// loopback (Ray's dashboard, Serve's proxy), and the answers back. Bytes stream both ways with back-pressure:
/// nothing is buffered beyond a few reads, whatever the body's size. `raylan up --head` runs it in a process of
/// its own (`raylan tls-front`), inside the Ray node's records, so that `raylan down` ends it with the node.
///
/// Each listener binds one address and port, such as the head's LAN address at 8265, while Ray's server binds
/// 127.0.0.1 at the same port: clients keep the ports they know, and plain HTTP is reachable on loopback only.
///
/// ```swift
/// let front = TLSFront(
///     routes: [.init(listenHost: "192.168.1.130", port: 8265, upstreamPort: 8265)],
///     certificateFile: identity.certificateFile, keyFile: identity.keyFile)
/// try await front.run()
/// ```
public struct TLSFront: Sendable {
    /// One listener: TLS on `listenHost:port`, relayed to `upstreamHost:upstreamPort`.
    public struct Route: Sendable, Hashable, Codable {
        public var listenHost: String
        public var port: Int
        public var upstreamHost: String
        public var upstreamPort: Int

        public init(listenHost: String, port: Int, upstreamHost: String = "127.0.0.1", upstreamPort: Int) {
            self.listenHost = listenHost
            self.port = port
            self.upstreamHost = upstreamHost
            self.upstreamPort = upstreamPort
        }

        /// `LISTEN_HOST:PORT=UPSTREAM_PORT` (upstream on 127.0.0.1), as `raylan tls-front --route` takes it.
        public init?(parsing text: String) {
            let sides = text.split(separator: "=")
            guard sides.count == 2, let colon = sides[0].lastIndex(of: ":"),
                let port = Int(sides[0][sides[0].index(after: colon)...]), let upstream = Int(sides[1]),
                (1...65535).contains(port), (1...65535).contains(upstream)
            else { return nil }
            self.init(listenHost: String(sides[0][..<colon]), port: port, upstreamPort: upstream)
        }

        public var argument: String { "\(listenHost):\(port)=\(upstreamPort)" }
    }

    public var routes: [Route]
    public var certificateFile: String
    public var keyFile: String
    /// The most connections open at once, all routes together; one more is closed at once. Default 1024.
    public var maxConnections: Int
    /// How long a new connection may take to finish its TLS handshake. Default 10 s.
    public var handshakeTimeout: Duration
    /// How long a connection may stay silent both ways before it is closed. Default 10 minutes: longer than any
    /// wait a RayLAN request makes.
    public var idleTimeout: Duration

    public init(
        routes: [Route], certificateFile: String, keyFile: String, maxConnections: Int = 1024,
        handshakeTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(600)
    ) {
        self.routes = routes
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.maxConnections = maxConnections
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
    }

    /// Binds every route, calls `ready` with the bound ports (in the order of ``routes``), and relays until the
    /// task is cancelled.
    /// - Throws: when the key or certificate cannot be read, or a route cannot be bound (nothing then listens).
    public func run(ready: @Sendable ([Int]) -> Void = { _ in }) async throws {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: tls)
        let open = LockedBox(0)
        let maxConnections = max(1, self.maxConnections)
        let limits = (handshake: TimeAmount(handshakeTimeout), idle: TimeAmount(idleTimeout))
        var listeners: [(Route, NIOAsyncChannel<Accepted, Never>)] = []
        do {
            for route in routes {
                let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: route.listenHost, port: route.port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            // The bound is kept here, before any byte is read: one connection too many is closed
                            // without a TLS handshake (or any answer) begun.
                            let admitted = open.withLock { count in
                                guard count < maxConnections else { return false }
                                count += 1
                                return true
                            }
                            let operations = channel.pipeline.syncOperations
                            if admitted {
                                try operations.addHandler(NIOSSLServerHandler(context: context))
                                try operations.addHandler(IdleStateHandler(allTimeout: limits.idle))
                                try operations.addHandler(ConnectionWatch(handshake: limits.handshake))
                            } else {
                                channel.close(promise: nil)
                            }
                            return Accepted(
                                channel: try NIOAsyncChannel(wrappingChannelSynchronously: channel), admitted: admitted)
                        }
                    }
                listeners.append((route, listener))
            }
        } catch {
            for (_, listener) in listeners { try? await listener.channel.close() }
            throw error
        }
        ready(listeners.map { $0.1.channel.localAddress?.port ?? $0.0.port })
        try await withThrowingDiscardingTaskGroup { group in
            for (route, listener) in listeners {
                group.addTask {
                    try await listener.executeThenClose { accepted in
                        try await withThrowingDiscardingTaskGroup { connections in
                            for try await connection in accepted {
                                guard connection.admitted else {
                                    try? await connection.channel.executeThenClose { _, _ in }
                                    continue
                                }
                                connections.addTask {
                                    await Self.relay(connection.channel, to: route)
                                    open.withLock { $0 -= 1 }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs the front while `body` runs, with the bound ports (in the order of ``routes``), and stops it (its
    /// listeners closed) when `body` returns or throws.
    /// - Throws: what ``run(ready:)`` throws before it listens, or `body`'s error.
    public func whileRunning<Result: Sendable>(_ body: ([Int]) async throws -> Result) async throws -> Result {
        let (ready, continuation) = AsyncStream<[Int]>.makeStream()
        let task = Task {
            defer { continuation.finish() }
            try await run { continuation.yield($0) }
        }
        var iterator = ready.makeAsyncIterator()
        guard let ports = await iterator.next() else {
            try await task.value
            throw TLSError(.frontFailed, "The TLS front stopped before it listened")
        }
        do {
            let result = try await body(ports)
            task.cancel()
            _ = await task.result
            return result
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
    }

    /// A connection as accepted, and whether it is within the bound (one that is not is already closed).
    struct Accepted: Sendable {
        var channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        var admitted: Bool
    }

    /// Relays one client to a new connection to the route's upstream, made once the client sent its first bytes
    /// (so after its TLS handshake: a connection that only handshakes, or fails to, never reaches the upstream).
    /// The relay ends, closing both connections, when either side ends: a client that went away leaves no
    /// request behind it.
    static func relay(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to route: Route) async {
        try? await client.executeThenClose { clientIn, clientOut in
            var requests = clientIn.makeAsyncIterator()
            guard let first = try await requests.next() else { return }
            let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: route.upstreamHost, port: route.upstreamPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let clientChannel = client.channel
            try await upstream.executeThenClose { upstreamIn, upstreamOut in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        defer { clientChannel.close(promise: nil) }
                        for try await chunk in upstreamIn { try await clientOut.write(chunk) }
                    }
                    try await upstreamOut.write(first)
                    while let chunk = try await requests.next() { try await upstreamOut.write(chunk) }
                    group.cancelAll()
                }
            }
        }
    }
}

/// Closes a connection whose TLS handshake takes longer than its limit, or that stays idle (an
/// ``IdleStateHandler`` event).
final class ConnectionWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let limit: TimeAmount
    private var deadline: Scheduled<Void>?

    init(handshake limit: TimeAmount) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            deadline?.cancel()
        } else if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
