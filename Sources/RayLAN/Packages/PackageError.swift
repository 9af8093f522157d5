import Foundation

/// A working directory that cannot be packaged or uploaded.
public struct PackageError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The directory does not exist.
        public static let notFound = Code("notFound")
        /// The path is not a directory.
        public static let notADirectory = Code("notADirectory")
        /// The zipped package is at or over Ray's upload cap.
        public static let tooLarge = Code("tooLarge")
        /// The package could not be written.
        public static let zipFailed = Code("zipFailed")
        /// The cluster refused the upload.
        public static let uploadFailed = Code("uploadFailed")
    }

    public let code: Code
    public let message: String
    public let remedy: String?
    public let underlying: (any Error & Sendable)?

    init(_ code: Code, _ message: String, remedy: String? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.underlying = underlying
    }

    public var description: String { sentence(message, remedy: remedy) }
    public var isUsageError: Bool { code != .uploadFailed && code != .zipFailed }
}
