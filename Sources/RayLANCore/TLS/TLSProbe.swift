import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// One TLS handshake with a server, then the connection is closed: no request is sent. It tells which
/// certificate the server presents, before any credential goes to it.
package enum TLSProbe {
    /// Why a probe ended without a finished handshake.
    package enum Failure: Error {
        /// `decide` refused the certificate: the handshake was aborted.
        case refused
        /// The connection was made, and the handshake failed (not TLS, a protocol the two do not share, a
        /// certificate the system does not trust).
        case handshake(any Error)
        /// No connection (refused, unreachable, timed out).
        case connect(any Error)
        /// The connection was made, and the server closed it without sending a byte (a server at its connection
        /// bound, or going away).
        case closed(any Error)
        /// No answer within the time limit.
        case timedOut
    }

    /// Handshakes with `host:port` and closes.
    ///
    /// - Parameters:
    ///   - connectTimeout: the limit for the TCP connection; `timeout` then limits the handshake.
    ///   - decide: given the server's leaf certificate, whether to finish the handshake. Nil: the system's trust
    ///     store and the host name (or, for an IP address, the certificate's IP addresses) decide.
    /// - Returns: the leaf certificate the server presented (nil where the system decided).
    package static func handshake(
        host: String, port: Int, connectTimeout: Duration? = nil, timeout: Duration,
        decide: (@Sendable (NIOSSLCertificate) -> Bool)?
    ) async throws(Failure) -> NIOSSLCertificate? {
        let presented = LockedBox<NIOSSLCertificate?>(nil)
        let refused = LockedBox(false)
        let answered = LockedBox(false)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        // With `decide`, the certificate alone decides (a pin names the server, whatever address reaches it).
        if decide != nil { configuration.certificateVerification = .noHostnameVerification }
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: configuration) } catch { throw .handshake(error) }
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        let group = MultiThreadedEventLoopGroup.singleton
        let outcome = group.any().makePromise(of: Void.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(connectTimeout ?? timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler: NIOSSLClientHandler
                        if let decide {
                            handler = try NIOSSLClientHandler(
                                context: context, serverHostname: isAddress ? nil : host
                            ) { certificates, promise in
                                guard let leaf = certificates.first else { return promise.succeed(.failed) }
                                presented.withLock { $0 = leaf }
                                let accepted = decide(leaf)
                                refused.withLock { $0 = !accepted }
                                promise.succeed(accepted ? .certificateVerified : .failed)
                            }
                        } else {
                            handler = try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host)
                        }
                        try channel.pipeline.syncOperations.addHandler(FirstBytes(answered))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        try channel.pipeline.syncOperations.addHandler(HandshakeOutcome(outcome))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            outcome.fail(ChannelError.eof)
            throw .connect(error)
        }
        defer { channel.close(promise: nil) }
        let timedOut = LockedBox(false)
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            timedOut.withLock { $0 = true }
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            try await outcome.futureResult.get()
        } catch {
            if timedOut.withLock({ $0 }) { throw .timedOut }
            if refused.withLock({ $0 }) { throw .refused }
            throw answered.withLock { $0 } ? .handshake(error) : .closed(error)
        }
        return presented.withLock { $0 }
    }
}

/// Completes ``outcome`` once, when the TLS handshake finishes or the connection fails first.
private final class HandshakeOutcome: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let outcome: EventLoopPromise<Void>
    private var settled = false

    init(_ outcome: EventLoopPromise<Void>) { self.outcome = outcome }

    func settle(_ result: Result<Void, any Error>) {
        guard !settled else { return }
        settled = true
        outcome.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { settle(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settle(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(.failure(ChannelError.eof))
        context.fireChannelInactive()
    }
}

/// Notes whether the server sent any byte (ahead of TLS, so it sees the raw bytes).
private final class FirstBytes: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let answered: LockedBox<Bool>

    init(_ answered: LockedBox<Bool>) { self.answered = answered }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        answered.withLock { $0 = true }
        context.fireChannelRead(data)
    }
}
