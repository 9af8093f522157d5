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
    /// - Throws: ``PackageError`` when the directory is missing or not a directory.
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
        let name = "_ray_pkg_" + walker.hash.map { String(format: "%02x", $0) }.joined() + ".zip"
        return WorkingDirectoryPackage(directory: root, name: name, entries: walker.entries)
    }

    /// Writes the zip (files and empty folders, paths relative to the directory, as Ray's `_zip_files`).
    ///
    /// - Throws: ``PackageError`` (`tooLarge`) when the zip reaches ``PackageOptions/maxPackageBytes``,
    ///   naming the largest files to exclude.
    public func makeZip(options: PackageOptions = PackageOptions()) throws -> Data {
        let temporary = FileManager.default.temporaryDirectory
            .appendingPathComponent("raylan-\(UUID().uuidString).zip")
        defer { try? FileManager.default.removeItem(at: temporary) }
        do {
            let archive = try Archive(url: temporary, accessMode: .create)
            for entry in entries where entry.isEmptyDirectory || !entry.isDirectory {
                let fileURL = directory.appendingPathComponent(entry.path)
                if entry.isDirectory {
                    try archive.addEntry(with: entry.path + "/", fileURL: fileURL)
                } else if (try? fileURL.resourceValues(forKeys: [.isSymbolicLinkKey]).isSymbolicLink) == true {
                    // Python's ZipFile follows links: store the target's bytes.
                    let data = (try? Data(contentsOf: fileURL)) ?? Data()
                    try archive.addEntry(
                        with: entry.path, type: .file, uncompressedSize: Int64(data.count),
                        compressionMethod: .deflate,
                        provider: { position, size in data.subdata(in: Int(position)..<Int(position) + size) })
                } else {
                    try archive.addEntry(with: entry.path, fileURL: fileURL, compressionMethod: .deflate)
                }
            }
        } catch {
            throw PackageError(
                .zipFailed, "Could not zip '\(directory.path)': \(error)",
                remedy: "Check that every file in it is readable.", underlying: error)
        }
        let data = try Data(contentsOf: temporary)
        guard data.count < options.maxPackageBytes else {
            let largest = entries.filter { !$0.isDirectory }.sorted { $0.size > $1.size }.prefix(3)
                .map { "\($0.path) (\(Self.mebibytes($0.size)))" }.joined(separator: ", ")
            throw PackageError(
                .tooLarge,
                "The working directory '\(directory.path)' zips to \(Self.mebibytes(data.count)), over Ray's upload cap of \(Self.mebibytes(options.maxPackageBytes)); largest files: \(largest)",
                remedy: "Exclude large files with .gitignore, .rayignore or --exclude, or put the data on the cluster.")
        }
        return data
    }

    static func mebibytes(_ bytes: Int) -> String {
        String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}

/// Ray's `_dir_travel`: ignore files are read in each folder before its own skip check, and apply to the
/// folder itself (as ".") and everything below it.
private struct Walker {
    let root: URL
    let options: PackageOptions
    var hash: [UInt8] = Array("00000000".utf8)
    var entries: [WorkingDirectoryPackage.Entry] = []
    /// Matchers in force: the rules and the relative path of the folder they are anchored at.
    var matchers: [(rules: IgnoreRules, base: String)]

    init(root: URL, options: PackageOptions) {
        self.root = root
        self.options = options
        let rootRules = IgnoreRules(lines: options.defaultExcludes + options.excludes)
        self.matchers = rootRules.isEmpty ? [] : [(rootRules, ".")]
    }

    mutating func travel(_ url: URL, relative: String) throws {
        let isDirectory = Self.isDirectory(url)
        var pushed = 0
        if isDirectory {
            let names = options.honorsGitignore ? [".gitignore", ".rayignore"] : [".rayignore"]
            for name in names {
                let file = url.appendingPathComponent(name)
                if Self.isRegularFile(file), let text = try? String(contentsOf: file, encoding: .utf8) {
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
        if !isDirectory, let handle = try? FileHandle(forReadingFrom: url) {
            defer { try? handle.close() }
            while let chunk = try? handle.read(upToCount: 4 << 20), !chunk.isEmpty {
                sha.update(data: chunk)
                size += chunk.count
            }
        }
        for (index, byte) in sha.finalize().prefix(8).enumerated() { hash[index] ^= byte }

        if isDirectory {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            if relative != "." {
                entries.append(.init(path: relative, isDirectory: true, size: 0, isEmptyDirectory: names.isEmpty))
            }
            for name in names {
                try travel(url.appendingPathComponent(name), relative: relative == "." ? name : relative + "/" + name)
            }
        } else if Self.isRegularFile(url) {
            entries.append(.init(path: relative, isDirectory: false, size: size, isEmptyDirectory: false))
        }
    }

    /// `relative` expressed from the folder `base` (both relative to the root; "." is the root).
    static func path(_ relative: String, from base: String) -> String {
        if base == "." { return relative }
        if relative == base { return "." }
        return String(relative.dropFirst(base.count + 1))
    }

    /// `Path.is_dir()`: follows links.
    static func isDirectory(_ url: URL) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &flag) && flag.boolValue
    }

    /// `Path.is_file()`: follows links.
    static func isRegularFile(_ url: URL) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &flag) && !flag.boolValue
    }
}
