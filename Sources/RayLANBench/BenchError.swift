import Foundation
import RayLAN

/// A benchmark that could not measure: no images to send, or a level at which every request failed.
///
/// A struct with an extensible ``Code`` rather than an enum, so new cases never break callers:
/// compare with `error.code == .everyRequestFailed`. Failures of the cluster (``ClusterError``), of a
/// deploy (``ServeError``) or of a reference job (``JobError``) are thrown as they are.
public struct BenchError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The configuration holds no images to send (a usage error).
        public static let noImages = Code("no_images")
        /// Every request at one concurrency level failed; ``BenchError/underlying`` is the first failure.
        public static let everyRequestFailed = Code("every_request_failed")
        /// A reference measurement (Ray Client's side of `--gateway`) gave no result.
        public static let referenceFailed = Code("reference_failed")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What failed, repeating the input.
    public let message: String
    /// What to do about it.
    public let remedy: String?
    /// The cause, where there is one.
    public let underlying: (any Error)?

    init(_ code: Code, _ message: String, remedy: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
        self.underlying = underlying
    }

    /// The message, then the remedy.
    public var description: String { sentence(message, remedy: remedy) }
    /// True for ``Code/noImages``: the input was at fault, not the cluster.
    public var isUsageError: Bool { code == .noImages }

    static func noImages() -> BenchError {
        BenchError(.noImages, "No images to benchmark with", remedy: "Pass a folder of images, or --synthetic N.")
    }

    static func everyRequestFailed(concurrency: Int, imagesPerRequest: Int, first: any Error) -> BenchError {
        let per = imagesPerRequest > 1 ? " × \(imagesPerRequest) images per request" : ""
        return BenchError(
            .everyRequestFailed, "Every request failed at \(concurrency) in flight\(per): \(first)",
            remedy:
                "See 'raylan serve status' and the replica's log; 'raylan detect' on one image shows the same error.",
            underlying: first)
    }
}
