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

/// A file that the cluster names, placed in a run's local output folder: the one way a name sent back by the
/// cluster becomes a local path (``ClusterSession/download(_:into:)``).
///
/// Nothing the cluster sends back is trusted as a path. **The rule:**
/// - The name is relative and each of its `/`-separated components is a plain name: not empty (no leading,
///   trailing or doubled `/`), not `.` or `..`, not starting with `.` (hidden files, and the
///   `.<name>.part-<random>` files a download writes), with no NUL or other control character and no backslash.
///   So `annotated/a.jpg` (the dataset session's annotated images) is taken; `..`, `../../x`, `a/../../x`,
///   `/etc/x`, `a\b` and `a//b` are not.
/// - On disk, under the output folder, each of its folders that exists must be a folder, not a symlink (to a
///   folder or not) and not a file; those missing are made one at a time as plain folders. The last component
///   must be missing or a regular file, which is replaced whole (as a second run into the same folder replaces
///   its files); an existing folder, a symlink or anything else there is refused.
///
/// A refused name is ``OnClusterError`` `badResponse`, naming it, before anything is made or written. The bytes go
/// to a temporary file beside the target, renamed over it only once complete; a download that fails or ends short
/// removes that file and the folders it made (those still empty), nothing else. Nothing outside the output folder
/// is made, written, replaced or removed.
struct DownloadTarget: Sendable {
    /// The run's output folder (the caller's: made when missing).
    let folder: URL
    /// The name as the cluster sent it.
    let name: String
    /// Its components, each a plain name.
    let components: [String]

    /// Takes `name` when it passes the rule's first part (the name alone; the disk is looked at by ``write(_:)``).
    /// - Throws: ``OnClusterError`` `badResponse`, naming `name` and why.
    init(_ name: String, in folder: URL) throws {
        self.folder = folder
        self.name = name
        if let problem = Self.problem(with: name) { throw Self.refusal(name, problem, in: folder) }
        // Split on the byte, not on Characters: "/" followed by a combining mark is one Character, but a separator
        // to the file system.
        components = name.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Where the file goes: the output folder and the name's components.
    var url: URL { URL(fileURLWithPath: path(upTo: components.count)) }

    /// Why `name` is not a plain relative name, or nil when it is.
    static func problem(with name: String) -> String? {
        let scalars = name.unicodeScalars
        if name.isEmpty { return "it is empty" }
        if scalars.contains("\0") { return "it holds a NUL" }
        if scalars.first == "/" { return "it is an absolute path" }
        if scalars.contains("\\") { return "it holds a backslash" }
        if scalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "it holds a control character"
        }
        for component in name.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if component.isEmpty { return "it has an empty component" }
            if component.elementsEqual("..".utf8) { return "it has a '..' component" }
            if component.elementsEqual(".".utf8) { return "it has a '.' component" }
            if component.first == UInt8(ascii: ".") {
                return "its component '\(String(decoding: component, as: UTF8.self))' is a hidden name"
            }
        }
        return nil
    }

    /// Writes the file: `fill` writes its bytes to a new temporary file beside the target, which is renamed over
    /// the target once `fill` returns. When anything fails, the temporary file and the folders this call made
    /// (still empty) are removed.
    /// - Throws: ``OnClusterError`` `badResponse` for what the disk refuses (see the rule), what `fill` throws, and
    ///   the system's errors (naming the path).
    func write(_ fill: (FileHandle) async throws -> Void) async throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try checkDisk()
        var made: [String] = []
        var temporary: String?
        do {
            made = try makeFolders()
            let last = components[components.count - 1]
            let partial =
                path(upTo: components.count - 1) + "/." + String(decoding: last.utf8.prefix(64), as: UTF8.self)
                + ".part-" + randomHex(bytes: 6)
            // A new file, never one that is there (O_EXCL), never through a link (O_NOFOLLOW).
            let descriptor = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
            guard descriptor >= 0 else { throw Self.systemError("create", partial) }
            temporary = partial
            let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            do {
                try await fill(handle)
                try handle.synchronize()
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            // rename(2) replaces a regular file whole, and never follows a link at the target.
            guard rename(partial, path(upTo: components.count)) == 0 else {
                throw Self.systemError("rename into place", partial)
            }
        } catch {
            if let temporary { unlink(temporary) }
            for folder in made.reversed() { rmdir(folder) }
            throw error
        }
    }

    /// The output folder's path and the name's first `count` components.
    private func path(upTo count: Int) -> String {
        components.prefix(count).reduce(folder.path) { $0 + "/" + $1 }
    }

    /// The rule's second part, before anything is made: what exists of the name under the output folder.
    private func checkDisk() throws {
        for index in 1...components.count {
            let isLast = index == components.count
            switch Self.type(at: path(upTo: index)) {
            case nil: return  // missing, and so is everything under it
            case .typeDirectory? where !isLast: continue
            case .typeRegular? where isLast: return
            case let type?: throw refusal(at: index, type)
            }
        }
    }

    /// Makes the name's missing folders, one at a time (mkdir never follows a link); returns those it made. One that
    /// appeared since ``checkDisk()`` is checked again.
    private func makeFolders() throws -> [String] {
        var made: [String] = []
        do {
            for index in 1..<components.count {
                let path = path(upTo: index)
                if mkdir(path, 0o777) == 0 {
                    made.append(path)
                    continue
                }
                guard errno == EEXIST else { throw Self.systemError("create the folder", path) }
                let type = Self.type(at: path)
                if type != .typeDirectory { throw refusal(at: index, type) }
            }
        } catch {
            for folder in made.reversed() { rmdir(folder) }
            throw error
        }
        return made
    }

    /// What is at `path`, a link itself rather than what it points to; nil when nothing is.
    private static func type(at path: String) -> FileAttributeType? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
    }

    /// The refusal for the name's first `index` components, where `type` is.
    private func refusal(at index: Int, _ type: FileAttributeType?) -> OnClusterError {
        let isLast = index == components.count
        let shown = components.prefix(index).joined(separator: "/")
        let problem: String
        switch type {
        case .typeSymbolicLink?: problem = "'\(shown)' is a symlink there"
        case .typeDirectory?: problem = "it names a folder that is there"
        case .typeRegular? where !isLast: problem = "'\(shown)' is a file there, not a folder"
        default: problem = "'\(shown)' there is neither a folder nor a regular file"
        }
        return Self.refusal(name, problem, in: folder)
    }

    private static func refusal(_ name: String, _ problem: String, in folder: URL) -> OnClusterError {
        let shown = String(reflecting: name)  // quoted and escaped: a control character is shown, not sent
        return OnClusterError(
            .badResponse,
            "The cluster named an output \(shown), which is not a plain path in \(folder.path) (\(problem)); "
                + "nothing of it was written",
            remedy:
                "Download into another folder (--out) if that name is in the way; a name that leaves the folder "
                + "means the session on the cluster (raylan_detect.session) is not RayLAN's own.")
    }

    /// The system's error (`errno`) for `action` on `path`, naming both.
    private static func systemError(_ action: String, _ path: String) -> NSError {
        let code = errno
        return NSError(
            domain: NSPOSIXErrorDomain, code: Int(code),
            userInfo: [
                NSFilePathErrorKey: path,
                NSLocalizedDescriptionKey: "Cannot \(action) \(path): \(String(cString: strerror(code)))",
            ])
    }
}
