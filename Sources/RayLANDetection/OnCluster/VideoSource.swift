import Foundation
import RayLANCore
import RayLANGateway

/// Where a video comes from: a local file (uploaded to the cluster in pieces), a file on the cluster's head node,
/// or a stream URL the cluster opens. Frames are always decoded on the cluster.
public enum VideoSource: Sendable, Hashable, CustomStringConvertible {
    /// A file on this machine; uploaded in pieces (an interrupted upload resumes), then decoded on the cluster.
    case file(URL)
    /// A file as the cluster's head node sees it (a local disk or an NFS/SMB mount).
    case cluster(String)
    /// A live stream opened on the cluster: `rtsp://`, `rtmp://`, `http(s)://` (MJPEG, HLS), `udp://`, `tcp://`,
    /// `srt://`.
    case stream(String)

    /// The URL schemes read as a ``stream(_:)``.
    public static let streamSchemes: Set<String> = [
        "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt",
    ]
    /// The file extensions read as video (case-insensitive).
    public static let videoExtensions: Set<String> = [
        "mp4", "m4v", "mov", "avi", "mkv", "webm", "mpg", "mpeg", "ts", "mts", "flv", "wmv", "3gp",
    ]

    /// A command-line argument as a source: a URL with a stream scheme is a stream; else, with `onCluster`, a path
    /// on the cluster; else a local file, which must exist.
    /// - Throws: ``OnClusterError`` (`invalidSource`, `sourceNotFound`), usage errors.
    public init(parsing argument: String, onCluster: Bool = false) throws {
        if Self.isStream(argument) {
            self = .stream(argument)
        } else if onCluster {
            guard argument.hasPrefix("/") else {
                throw OnClusterError(
                    .invalidSource, "'\(argument)' is not an absolute path",
                    remedy: "With --on-cluster, give the path as the cluster's head node sees it, e.g. /data/clip.mp4.")
            }
            self = .cluster(argument)
        } else {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder), !isFolder.boolValue else {
                throw OnClusterError(
                    .sourceNotFound, "'\(argument)' is not a video file on this machine",
                    remedy: "Check the path; for a file on the cluster's disks pass --on-cluster, for a camera its URL."
                )
            }
            self = .file(URL(fileURLWithPath: argument))
        }
    }

    /// Whether `argument` is a stream URL (by its scheme).
    public static func isStream(_ argument: String) -> Bool {
        guard let colon = argument.range(of: "://") else { return false }
        return streamSchemes.contains(argument[..<colon.lowerBound].lowercased())
    }

    /// Whether `argument` names a video: a stream URL or a file with a video extension.
    public static func isVideo(_ argument: String) -> Bool {
        isStream(argument) || videoExtensions.contains((argument as NSString).pathExtension.lowercased())
    }

    /// Whether frames come live (dropped when the detector falls behind) rather than every frame in order.
    public var isLive: Bool {
        if case .stream = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .file(let url): url.path
        case .cluster(let path): "cluster:\(path)"
        case .stream(let url): Self.redacted(url)
        }
    }

    /// A short name for output folders: the file's name, or the stream's host, port and path.
    public var name: String {
        switch self {
        case .file(let url): return url.deletingPathExtension().lastPathComponent
        case .cluster(let path): return ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        case .stream(let url):
            let rest = Self.redacted(url).components(separatedBy: "://").last ?? url
            let cleaned = rest.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
            return String(cleaned).trimmingCharacters(in: CharacterSet(charactersIn: "_"))
        }
    }

    /// The URL without a password (`rtsp://user:secret@cam` → `rtsp://user:***@cam`), for messages.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@"),
            let colon = url[scheme.upperBound..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }
}
