#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Crypto
import Foundation
import ZIPFoundation

/// A local directory packaged for Ray: its content-addressed URI and the files that go into the zip.
///
/// The URI is computed with Ray's own algorithm (`get_uri_for_directory`): XOR of the SHA-1 of each
/// included path's relative name (and content, for files), truncated to 8 bytes, so the same directory
/// gets the same `gcs://_ray_pkg_<16 hex>.zip` from Swift and from Ray's Python SDK.
public struct WorkingDirectoryPackage: Sendable {
    /// One included path.
    public struct Entry: Sendable, Hashable {
        /// Relative to the directory, `/`-separated.
        public var path: String
        public var isDirectory: Bool
        /// Bytes, for files.
        public var size: Int
        /// An empty directory (zipped as an entry of its own, as Ray does).
        public var isEmptyDirectory: Bool
    }

    /// The packaged directory.
    public let directory: URL
    /// `_ray_pkg_<16 hex>.zip`.
    public let name: String
    /// Every included path, the root excluded.
    public let entries: [Entry]

    /// `gcs://_ray_pkg_<16 hex>.zip`, the value for `runtime_env.working_dir`.
    public var uri: String { "gcs://" + name }
    /// Bytes of all included files, before compression.
    public var totalFileBytes: Int { entries.reduce(0) { $0 + $1.size } }

    /// Walks `directory` with Ray's rules and computes the package URI. Reads every included file once.
    ///
    /// - Throws: ``PackageError``: `notFound`, `notADirectory`; `unreadable` for a file or folder in it that
    ///   cannot be read; `symlinkLoop` for a folder link that leads back to a folder above it. Sockets, FIFOs,
    ///   devices and broken links are left out of the zip, their names hashed, as Ray's SDK does.
    public static func scan(_ directory: URL, options: PackageOptions = PackageOptions()) throws
        -> WorkingDirectoryPackage
    {
        let root = directory.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory) else {
            throw PackageError(
                .notFound, "The working directory '\(directory.path)' does not exist",
                remedy: "Pass an existing directory to --working-dir.")
        }
        guard isDirectory.boolValue else {
            throw PackageError(
                .notADirectory, "The working directory '\(directory.path)' is not a directory",
                remedy: "Pass the folder that holds your script to --working-dir.")
        }
        var walker = Walker(root: root, options: options)
        try walker.travel(root, relative: ".")
        let name = "_ray_pkg_" + walker.hash.hexString + ".zip"
        return WorkingDirectoryPackage(directory: root, name: name, entries: walker.entries)
    }

    /// Writes the zip (files and empty folders, paths relative to the directory, as Ray's `_zip_files`) in
    /// memory, with each file's mode bits and modification date. Stops as soon as the zip reaches
    /// ``PackageOptions/maxPackageBytes``, so a folder of many gigabytes costs no more than the cap to refuse.
    ///
    /// Ray's cap is on the zipped bytes: folders whose files add up to more than the cap are still tried, as
    /// text compresses well.
    /// - Throws: ``PackageError``: `tooLarge` when the zip reaches ``PackageOptions/maxPackageBytes``, naming
    ///   the largest files to exclude; `unreadable` for a file that cannot be read (or changed size since
    ///   ``scan(_:options:)``).
    public func makeZip(options: PackageOptions = PackageOptions()) throws -> Data {
        struct CapReached: Error {}
        let cap = options.maxPackageBytes
        do {
            let archive = try Archive(data: Data(), accessMode: .create)
            for entry in entries where entry.isEmptyDirectory || !entry.isDirectory {
                let fileURL = directory.appendingPathComponent(entry.path)
                // Python's ZipFile follows links: a linked file is stored with its target's bytes and mode.
                guard let info = FileStatus(fileURL) else {
                    throw PackageError.unreadable(entry.path, in: directory, reason: "it disappeared since the scan")
                }
                if entry.isDirectory {
                    try archive.addEntry(
                        with: entry.path + "/", type: .directory, uncompressedSize: 0,
                        modificationDate: info.modificationDate, permissions: info.permissions,
                        provider: { (_: Int64, _: Int) in Data() })
                    continue
                }
                let handle: FileHandle
                do {
                    handle = try FileHandle(forReadingFrom: fileURL)
                } catch {
                    throw PackageError.unreadable(entry.path, in: directory, reason: "\(error)", underlying: error)
                }
                defer { try? handle.close() }
                try archive.addEntry(
                    with: entry.path, type: .file, uncompressedSize: Int64(info.size),
                    modificationDate: info.modificationDate, permissions: info.permissions,
                    compressionMethod: .deflate
                ) { (position: Int64, count: Int) throws -> Data in
                    if (archive.data?.count ?? 0) >= cap { throw CapReached() }
                    let chunk: Data
                    do {
                        try handle.seek(toOffset: UInt64(position))
                        chunk = try handle.read(upToCount: count) ?? Data()
                    } catch {
                        throw PackageError.unreadable(entry.path, in: directory, reason: "\(error)", underlying: error)
                    }
                    guard chunk.count == count else {
                        throw PackageError.unreadable(
                            entry.path, in: directory, reason: "it changed size while being zipped")
                    }
                    return chunk
                }
                if (archive.data?.count ?? 0) >= cap { throw CapReached() }
            }
            guard let data = archive.data else { throw CocoaError(.fileWriteUnknown) }
            guard data.count < cap else { throw CapReached() }
            return data
        } catch is CapReached {
            throw tooLarge(cap: cap)
        } catch let error as PackageError {
            throw error
        } catch {
            throw PackageError(
                .zipFailed, "Could not zip '\(directory.path)': \(error)",
                remedy: "Check that every file in it is readable.", underlying: error)
        }
    }

    /// The `tooLarge` error: what the files add up to, the cap, and the largest files.
    private func tooLarge(cap: Int) -> PackageError {
        let largest = entries.filter { !$0.isDirectory }.sorted { $0.size > $1.size }.prefix(3)
            .map { "\($0.path) (\(Self.mebibytes($0.size)))" }.joined(separator: ", ")
        return PackageError(
            .tooLarge,
            "The working directory '\(directory.path)' (\(Self.mebibytes(totalFileBytes)) of files) zips to more "
                + "than Ray's upload cap of \(Self.mebibytes(cap)); largest files: \(largest)",
            remedy: "Exclude large files with .gitignore, .rayignore or --exclude, or put the data on the cluster.")
    }

    static func mebibytes(_ bytes: Int) -> String {
        String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}

/// Ray's `_dir_travel`: ignore files are read in each folder before its own skip check, and apply to the
/// folder itself (as ".") and everything below it.
///
/// Where Ray's SDK cannot open a path (a socket, a broken link) it hashes the name alone and leaves the path
/// out of the zip; FIFOs and devices are treated the same here (Ray's SDK would block on a FIFO, and read a
/// device as a file). A regular file or a folder that cannot be read is an error (Ray's zip step fails on
/// it), and so is a folder link that leads back to a folder above it (Ray would follow it until the system
/// refuses, some 40 levels deep, and package every level).
private struct Walker {
    let root: URL
    let options: PackageOptions
    var hash: [UInt8] = Array("00000000".utf8)
    var entries: [WorkingDirectoryPackage.Entry] = []
    /// Matchers in force: the rules and the relative path of the folder they are anchored at.
    var matchers: [(rules: IgnoreRules, base: String)]
    /// The folders from the root down to the one being walked: their identity and relative path.
    var ancestors: [(id: FileStatus.ID, path: String)] = []

    init(root: URL, options: PackageOptions) {
        self.root = root
        self.options = options
        let rootRules = IgnoreRules(lines: options.defaultExcludes + options.excludes)
        self.matchers = rootRules.isEmpty ? [] : [(rootRules, ".")]
    }

    mutating func travel(_ url: URL, relative: String) throws {
        // `stat`, following links; nil for a broken link (Ray's `is_dir()` and `is_file()` are then false).
        let info = FileStatus(url)
        let isDirectory = info?.kind == .directory
        var pushed = 0
        if isDirectory {
            let names = options.honorsGitignore ? [".gitignore", ".rayignore"] : [".rayignore"]
            for name in names {
                let file = url.appendingPathComponent(name)
                if FileStatus(file)?.kind == .regular, let text = try? String(contentsOf: file, encoding: .utf8) {
                    matchers.append((IgnoreRules(lines: text.components(separatedBy: "\n")), relative))
                    pushed += 1
                }
            }
        }
        defer { matchers.removeLast(pushed) }
        if matchers.contains(where: { $0.rules.matches(Self.path(relative, from: $0.base)) }) { return }

        var sha = Insecure.SHA1()
        sha.update(data: Data(relative.utf8))
        var size = 0
        if info?.kind == .regular {
            let handle: FileHandle
            do {
                handle = try FileHandle(forReadingFrom: url)
            } catch {
                throw PackageError.unreadable(relative, in: root, reason: "\(error)", underlying: error)
            }
            defer { try? handle.close() }
            do {
                while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
                    sha.update(data: chunk)
                    size += chunk.count
                }
            } catch {
                throw PackageError.unreadable(relative, in: root, reason: "\(error)", underlying: error)
            }
        }
        for (index, byte) in sha.finalize().prefix(8).enumerated() { hash[index] ^= byte }

        if let info, isDirectory {
            if let above = ancestors.first(where: { $0.id == info.id }) {
                throw PackageError(
                    .symlinkLoop,
                    "The folder link '\(relative)' in '\(root.path)' leads back to '\(above.path)', a folder that "
                        + "holds it: the working directory would never end",
                    remedy: "Remove the link, or leave it out with --exclude '\(relative)' (or a .rayignore line).")
            }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: url.path)
            } catch {
                throw PackageError.unreadable(relative, in: root, reason: "\(error)", underlying: error)
            }
            if relative != "." {
                entries.append(.init(path: relative, isDirectory: true, size: 0, isEmptyDirectory: names.isEmpty))
            }
            ancestors.append((info.id, relative))
            defer { ancestors.removeLast() }
            for name in names {
                try travel(url.appendingPathComponent(name), relative: relative == "." ? name : relative + "/" + name)
            }
        } else if info?.kind == .regular {
            entries.append(.init(path: relative, isDirectory: false, size: size, isEmptyDirectory: false))
        }
    }

    /// `relative` expressed from the folder `base` (both relative to the root; "." is the root).
    static func path(_ relative: String, from base: String) -> String {
        if base == "." { return relative }
        if relative == base { return "." }
        return String(relative.dropFirst(base.count + 1))
    }
}

/// What `stat(2)` says about a path, links followed.
struct FileStatus {
    enum Kind { case regular, directory, other }
    /// Device and inode: the same folder reached by two paths has the same identity.
    struct ID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    var kind: Kind
    var id: ID
    var size: Int
    var permissions: UInt16
    var modificationDate: Date

    /// Nil when `stat` fails (a broken link, a link loop, a missing path).
    init?(_ url: URL) {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        id = ID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        size = Int(info.st_size)
        permissions = UInt16(info.st_mode & 0o7777)
        #if canImport(Darwin)
            let time = info.st_mtimespec
        #else
            let time = info.st_mtim
        #endif
        modificationDate = Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
    }
}
