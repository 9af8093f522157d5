import Foundation

/// An image the service could not process, or a service that could not be reached.
public struct DetectionError: RayLANError, Sendable, Codable, Hashable {
    /// The service's or RayLAN's code: `empty`, `unsupported_format`, `too_large`, `decode_failed`,
    /// `unreadable` (the local file), `unavailable` (the service kept failing), `bad_response`.
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public var isUsageError: Bool { false }
}
