import Foundation

/// A working directory that cannot be packaged or uploaded.
public struct PackageError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The directory does not exist.
        public static let notFound = Code("not_found")
        /// The path is not a directory.
        public static let notADirectory = Code("not_a_directory")
        /// The zipped package is at or over Ray's upload cap.
        public static let tooLarge = Code("too_large")
        /// The package could not be written.
        public static let zipFailed = Code("zip_failed")
        /// The cluster refused the upload.
        public static let uploadFailed = Code("upload_failed")
        /// A file or folder in the directory cannot be read.
        public static let unreadable = Code("unreadable")
        /// A folder link leads back to a folder that holds it.
        public static let symlinkLoop = Code("symlink_loop")
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

    static func unreadable(
        _ relative: String, in directory: URL, reason: String, underlying: (any Error & Sendable)? = nil
    ) -> PackageError {
        PackageError(
            .unreadable, "Cannot read '\(relative)' in the working directory '\(directory.path)' (\(reason))",
            remedy: "Make it readable, or leave it out with --exclude '\(relative)' (or a .rayignore line).",
            underlying: underlying)
    }
    public var isUsageError: Bool { code != .uploadFailed && code != .zipFailed }
}
