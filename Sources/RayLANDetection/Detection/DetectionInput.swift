#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore
import RayLANGateway

/// One image file of a detect run: the path as the caller gave it (or as found in a folder), which is what
/// `detections.jsonl` records, and its file URL.
public struct DetectionInput: Sendable, Hashable {
    /// The path as given or found, e.g. `samples/shapes_00.jpg`. A name that is not UTF-8 shows each such
    /// component as `�` followed by its bytes percent-escaped (e.g. `�bad%FF.jpg`), so that it stays distinct.
    public var path: String
    /// The file.
    public var url: URL
    /// Why the input cannot be sent, found before reading it: not a regular file (`not_a_file`, e.g. a FIFO,
    /// which would block), 4 GiB or more (`too_large`), a name that is not UTF-8 or a file that cannot be
    /// examined (`unreadable`). A run records it as the input's error without sending. Nil: a file to send.
    public var error: DetectionError?

    public init(path: String, error: DetectionError? = nil) {
        self.init(path: path, url: URL(fileURLWithPath: path), error: error)
    }

    init(path: String, url: URL, error: DetectionError?) {
        self.path = path
        self.url = url
        self.error = error
    }

    /// The extensions a folder or a glob contributes: `jpg jpeg png webp bmp`.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "bmp"]

    /// The smallest file size refused (`too_large`) before reading: 4 GiB, past the 4-byte frame length.
    public static let sizeLimit: Int64 = 1 << 32

    /// Expands paths the way `raylan detect` takes them: a file as given (whatever its extension), a folder
    /// recursively (image extensions only, sorted; symlinked folders followed, each folder once, so a link
    /// loop ends), a glob (`*`, `?`, `[`) expanded (image extensions only).
    ///
    /// The same file reached twice — by two spellings (`samples`, `./samples`), a symlink or a hard link — is
    /// one input, under the first path found. FIFOs, devices and sockets, files of 4 GiB or more, and names
    /// that are not UTF-8 are inputs with their ``error`` set, never read.
    /// - Returns: the inputs in a stable order, and the arguments that matched no image file.
    public static func expand(_ arguments: [String]) -> (inputs: [DetectionInput], unmatched: [String]) {
        var inputs: [DetectionInput] = []
        var seen = Set<Identity>()
        var unmatched: [String] = []
        for argument in arguments {
            var found: [Found] = []
            let raw = Array(argument.utf8)
            if let info = status(of: raw).info {
                if isType(info, Kind.folder) {
                    var visited = Set<Identity>()
                    walk(Found(raw: raw, path: argument, isRepresentable: true), info, visited: &visited, into: &found)
                    found.sort { $0.path < $1.path }
                } else {
                    found.append(Found(raw: raw, path: argument, isRepresentable: true, info: info))
                }
            } else if argument.contains(where: { "*?[".contains($0) }) {
                for match in glob(argument) {
                    let matched = status(of: match)
                    if let info = matched.info, isType(info, Kind.folder) { continue }
                    let item = Found(name: match, in: nil, status: matched)
                    if isImage(item.path) { found.append(item) }
                }
            }
            if found.isEmpty { unmatched.append(argument) }
            for item in found where seen.insert(item.identity).inserted {
                inputs.append(item.input)
            }
        }
        return (inputs, unmatched)
    }

    static func isImage(_ path: String) -> Bool {
        imageExtensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// A file found: its bytes for the system, its path as shown, and what `stat` said (nil: it failed).
    struct Found {
        var raw: [UInt8]
        var path: String
        var isRepresentable: Bool
        var info: stat?
        var statError: Int32 = 0

        init(raw: [UInt8], path: String, isRepresentable: Bool, info: stat? = nil) {
            self.raw = raw
            self.path = path
            self.isRepresentable = isRepresentable
            self.info = info
        }

        /// `name` (bytes) inside `parent` (nil: `name` is a whole path), with what `stat` said of it.
        init(name: [UInt8], in parent: Found?, status: (info: stat?, error: Int32)) {
            let shown = DetectionInput.displayName(name)
            if let parent {
                let separator: [UInt8] = parent.raw.last == UInt8(ascii: "/") ? [] : [UInt8(ascii: "/")]
                raw = parent.raw + separator + name
                path = parent.path + (separator.isEmpty ? "" : "/") + shown.text
                isRepresentable = parent.isRepresentable && shown.isUTF8
            } else {
                raw = name
                path = shown.text
                isRepresentable = shown.isUTF8
            }
            info = status.info
            statError = status.error
        }

        var identity: Identity {
            guard let info else { return .path(path) }
            return .file(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }

        var input: DetectionInput {
            guard isRepresentable else {
                return DetectionInput(
                    path: path, url: URL(fileURLWithPath: "/nonexistent"),
                    error: DetectionError(
                        .unreadable, "the path '\(path)' is not UTF-8 (shown escaped); rename the file to send it"))
            }
            var input = DetectionInput(
                path: path, url: URL(fileURLWithPath: String(decoding: raw, as: UTF8.self)), error: nil)
            guard let info else {
                input.error = DetectionError(
                    .unreadable, "cannot read \(path): \(String(cString: strerror(statError)))")
                return input
            }
            if !isType(info, Kind.file) {
                let kind =
                    isType(info, Kind.fifo)
                    ? "a FIFO"
                    : isType(info, Kind.socket) ? "a socket" : isType(info, Kind.folder) ? "a folder" : "a device"
                input.error = DetectionError(.notAFile, "\(path) is \(kind), not an image file; it is not read")
            } else if Int64(info.st_size) >= DetectionInput.sizeLimit {
                input.error = DetectionError(
                    .tooLarge, "\(path) is \(Int64(info.st_size)) bytes; image files of 4 GiB or more are not sent")
            }
            return input
        }
    }

    /// What makes two paths one input: the same file (device and inode), else the same path.
    enum Identity: Hashable {
        case file(device: UInt64, inode: UInt64)
        case path(String)
    }

    /// Adds the image files under `folder` (its `stat` is `info`) to `found`, following symlinked folders and
    /// walking each folder once (`visited`), which also ends link loops.
    static func walk(_ folder: Found, _ info: stat, visited: inout Set<Identity>, into found: inout [Found]) {
        guard visited.insert(.file(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))).inserted,
            let directory = folder.raw.withCString({ opendir($0) })
        else { return }
        var names: [[UInt8]] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }) }
            if name != [UInt8(ascii: ".")] && name != [UInt8(ascii: "."), UInt8(ascii: ".")] { names.append(name) }
        }
        closedir(directory)
        for name in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let child = Found(name: name, in: folder, status: status(of: folder.raw + [UInt8(ascii: "/")] + name))
            if let childInfo = child.info, isType(childInfo, Kind.folder) {
                walk(child, childInfo, visited: &visited, into: &found)
            } else if isImage(child.path) {
                found.append(child)
            }
        }
    }

    /// `stat` (following links) of a path given as bytes; no info and the `errno` when it fails.
    static func status(of raw: [UInt8]) -> (info: stat?, error: Int32) {
        var info = stat()
        return raw.withCString { stat($0, &info) } == 0 ? (info, 0) : (nil, errno)
    }

    /// File types in `st_mode` (the same bits on Linux and macOS).
    enum Kind: UInt32 {
        case folder = 0o040000, file = 0o100000, fifo = 0o010000, socket = 0o140000
    }

    static func isType(_ info: stat, _ kind: Kind) -> Bool {
        UInt32(info.st_mode) & 0o170000 == kind.rawValue
    }

    /// A file name for display: itself when UTF-8 (and not starting with `�`); else `�` and its bytes with
    /// everything but printable ASCII (and `%`) percent-escaped — distinct for distinct bytes.
    static func displayName(_ name: [UInt8]) -> (text: String, isUTF8: Bool) {
        let text = String(decoding: name, as: UTF8.self)
        let isUTF8 = text.utf8.elementsEqual(name)  // decoding repairs invalid bytes, changing them
        if isUTF8 && !text.hasPrefix("\u{FFFD}") { return (text, true) }
        return ("\u{FFFD}" + percentEscaped(name), isUTF8)
    }

    static func percentEscaped(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            (0x20..<0x7F).contains(byte) && byte != UInt8(ascii: "%")
                ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
    }

    /// The paths a glob matches, as bytes, sorted.
    static func glob(_ pattern: String) -> [[UInt8]] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Foundation.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { index in
            result.gl_pathv[index].map { pointer in
                Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer))).map { UInt8(bitPattern: $0) }
            }
        }.sorted { $0.lexicographicallyPrecedes($1) }
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with the bytes as a NUL-terminated C string.
    fileprivate func withCString<Result>(_ body: (UnsafePointer<CChar>) -> Result) -> Result {
        (self + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }
}
