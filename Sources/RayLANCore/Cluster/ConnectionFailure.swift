#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import AsyncHTTPClient
import NIOCore
import NIOPosix

/// Why a request got no HTTP answer, told apart by the error values AsyncHTTPClient and SwiftNIO throw
/// (never by their descriptions).
package enum ConnectionFailure: Equatable {
    /// The host answered the connection attempt with a refusal: nothing listens on the port.
    case refused
    /// No answer to the connection attempt in time: a firewall may drop the packets.
    case connectTimedOut
    /// All connections were busy for longer than the connect timeout.
    case poolExhausted
    /// Connected, but the answer did not come in time.
    case noAnswer
    /// Connected, but nothing arrived for the read timeout: no answer, or a body that stopped midway
    /// (a dropped link, a stuck server).
    case stalled
    /// No route to the host or its network.
    case noRoute
    /// The host name did not resolve.
    case unresolved
    /// The server closed the connection before answering.
    case closed
    /// Anything else; the description of the error, for the message only.
    case other(String)

    package init(_ error: any Error) {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: self = .connectTimedOut
            case .getConnectionFromPoolTimeout: self = .poolExhausted
            case .readTimeout: self = .stalled
            case .deadlineExceeded, .writeTimeout: self = .noAnswer
            case .remoteConnectionClosed: self = .closed
            default: self = .other(String(describing: error))
            }
            return
        }
        if let error = error as? NIOConnectionError {
            if let last = error.connectionErrors.last {
                self.init(last.error)
            } else if error.dnsAError != nil || error.dnsAAAAError != nil {
                self = .unresolved
            } else {
                self = .other(String(describing: error))
            }
            return
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: self = .refused
            case EHOSTUNREACH, ENETUNREACH: self = .noRoute
            case ETIMEDOUT: self = .connectTimedOut
            case ECONNRESET, EPIPE: self = .closed
            default: self = .other(String(describing: error))
            }
            return
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout: self = .connectTimedOut
            case .eof, .ioOnClosedChannel, .alreadyClosed: self = .closed
            default: self = .other(String(describing: error))
            }
            return
        }
        if error is SocketAddressError { self = .unresolved; return }
        self = .other(String(describing: error))
    }

    /// A short human reason, for messages; `timeout` is the whole request's limit, `read` the read timeout.
    func reason(timeout: Duration, read: Duration? = nil) -> String {
        switch self {
        case .refused: "connection refused"
        case .connectTimedOut: "no answer to the connection attempt: a firewall may drop the packets"
        case .poolExhausted: "no free connection in time: more requests in flight than connections"
        case .noAnswer: "no answer within \(timeout)"
        case .stalled:
            "nothing received for \(read.map { "\($0)" } ?? "the read timeout"): the link dropped or the server is stuck"
        case .noRoute: "no route to host"
        case .unresolved: "the host name could not be resolved"
        case .closed: "the server closed the connection"
        case .other(let text): text
        }
    }
}
