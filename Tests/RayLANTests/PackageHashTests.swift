#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Crypto
import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// The package URI and zip content must equal what Ray's own Python functions produce for the same
/// directory, so Swift and Python clients share uploads.
@Suite("Working-directory packages match Ray's Python SDK")
struct PackageHashTests {
    /// Ray's `get_uri_for_directory` (with the SDK's default excludes) and `_zip_files`' entries (name →
    /// SHA-256 of the entry's bytes; folders map to ""), from the project's Ray 2.60 venv.
    static func rayPackage(_ directory: URL, excludes: [String] = []) async throws -> (
        uri: String, entries: [String: String]
    ) {
        let python = try TestEnvironment.environment(.current).python
        let script = """
            import hashlib, json, sys, tempfile, zipfile, os
            from ray._private.runtime_env.packaging import get_uri_for_directory, _zip_files
            from ray._private import ray_constants
            d, user = sys.argv[1], json.loads(sys.argv[2])
            excludes = ray_constants.get_runtime_env_default_excludes() + user
            uri = get_uri_for_directory(d, include_gitignore=True, excludes=excludes)
            with tempfile.TemporaryDirectory() as folder:
                out = os.path.join(folder, "p.zip")
                _zip_files(d, excludes, out, include_gitignore=True)
                with zipfile.ZipFile(out) as z:
                    entries = {n: "" if n.endswith("/") else hashlib.sha256(z.read(n)).hexdigest()
                               for n in z.namelist()}
            print(json.dumps({"uri": uri, "entries": entries}))
            """
        let excludesJSON = String(decoding: try JSONEncoder().encode(excludes), as: UTF8.self)
        let result = try await CommandRunner.run(python, ["-c", script, directory.path, excludesJSON])
        try #require(result.status == 0, "\(result)")
        struct Answer: Decodable { var uri: String; var entries: [String: String] }
        let answer = try JSONDecoder().decode(Answer.self, from: Data(result.stdout.utf8))
        return (answer.uri, answer.entries)
    }

    /// The entries of a zip (name → SHA-256 of its bytes; folders map to ""), read by Python's zipfile (so the
    /// zip is also checked to be valid and its entries to decompress with their CRCs).
    static func zipEntries(_ data: Data) async throws -> [String: String] {
        let folder = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("p.zip")
        try data.write(to: file)
        let python = try TestEnvironment.environment(.current).python
        let result = try await CommandRunner.run(
            python,
            [
                "-c",
                "import hashlib,json,sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; "
                    + "print(json.dumps({n: '' if n.endswith('/') else hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}))",
                file.path,
            ])
        try #require(result.status == 0, "\(result)")
        return try JSONDecoder().decode([String: String].self, from: Data(result.stdout.utf8))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var files: [String: String]
        var emptyFolders: [String] = []
        var excludes: [String] = []
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "flat", files: ["main.py": "print('hi')\n", "data.txt": "1 2 3"]),
        Case(
            name: "nested folders and empty folders",
            files: ["a/b/c/deep.py": "x = 1", "a/top.py": "", "README": "r"],
            emptyFolders: ["empty", "a/also-empty"]),
        Case(
            name: ".gitignore at the root and nested, with negation and folder patterns",
            files: [
                ".gitignore": "*.log\n!keep.log\nbuild/\n/secret.txt\n# comment\n\ndocs/*.md\n",
                "run.log": "noise", "keep.log": "kept", "secret.txt": "s", "sub/secret.txt": "not root, kept",
                "build/out.bin": "bin", "build/deeper/x.o": "o", "docs/a.md": "md", "docs/b.txt": "txt",
                "sub/.gitignore": "*.tmp\nlocal/\n", "sub/x.tmp": "t", "sub/y.py": "y", "sub/local/z": "z",
                "main.py": "print(1)",
            ]),
        Case(
            name: "unicode names",
            files: ["données/été.py": "print('é')", "日本語.txt": "テキスト", "emoji-🚀.md": "go"],
            emptyFolders: ["пусто"]),
        Case(
            name: "default excludes, .rayignore and user excludes",
            files: [
                ".git/HEAD": "ref", ".venv/bin/python": "#!", "pkg/__pycache__/m.cpython-311.pyc": "c",
                "pkg/m.py": "m", ".rayignore": "*.ckpt\n", "model.ckpt": "big", "data/raw.csv": "1,2",
                "data/keep.json": "{}", "notes.bak": "b",
            ],
            excludes: ["data/*.csv", "*.bak"]),
        Case(
            name: "wildcards and character classes",
            files: [
                ".gitignore": "file[0-9].txt\n?.dat\n**/gen/**\nlogs/**/*.out\n",
                "file1.txt": "", "fileA.txt": "", "a.dat": "", "ab.dat": "", "x/gen/y.py": "", "gen/z.py": "",
                "logs/a/b/c.out": "", "logs/c.out": "", "logs/c.in": "",
            ]),
    ]

    @Test("URI and zip content equal Ray's", arguments: cases)
    func matchesRay(_ testCase: Case) async throws {
        let directory = try makeDirectory(testCase.files, emptyFolders: testCase.emptyFolders)
        defer { try? FileManager.default.removeItem(at: directory) }
        let options = PackageOptions(excludes: testCase.excludes)
        let package = try WorkingDirectoryPackage.scan(directory, options: options)
        let ray = try await Self.rayPackage(directory, excludes: testCase.excludes)
        #expect(package.uri == ray.uri)
        let entries = try await Self.zipEntries(package.makeZip(options: options))
        #expect(entries == ray.entries)
        // The files' bytes are the directory's own (not only equal to Ray's zip, which could share a bug).
        for (path, content) in testCase.files where entries[path] != nil {
            #expect(entries[path] == SHA256.hash(data: Data(content.utf8)).map { String(format: "%02x", $0) }.joined())
        }
        #expect(package.uri.range(of: #"^gcs://_ray_pkg_[0-9a-f]{16}\.zip$"#, options: .regularExpression) != nil)
    }

    @Test("A changed byte changes the URI; the same content in another folder keeps it")
    func contentAddressed() throws {
        let one = try makeDirectory(["main.py": "print(1)"])
        let two = try makeDirectory(["main.py": "print(1)"])
        let three = try makeDirectory(["main.py": "print(2)"])
        defer { [one, two, three].forEach { try? FileManager.default.removeItem(at: $0) } }
        #expect(try WorkingDirectoryPackage.scan(one).uri == WorkingDirectoryPackage.scan(two).uri)
        #expect(try WorkingDirectoryPackage.scan(one).uri != WorkingDirectoryPackage.scan(three).uri)
    }

    @Test("A package at the cap is refused before upload, naming the largest file")
    func tooLarge() throws {
        let directory = try makeDirectory(["small.py": "x"])
        defer { try? FileManager.default.removeItem(at: directory) }
        var random = SystemRandomNumberGenerator()
        let bytes = Data((0..<200_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        try bytes.write(to: directory.appendingPathComponent("weights.bin"))
        let options = PackageOptions(maxPackageBytes: 100_000)
        let package = try WorkingDirectoryPackage.scan(directory, options: options)
        let error = try #require(throws: PackageError.self) { try package.makeZip(options: options) }
        #expect(error.code == .tooLarge)
        #expect(error.description.contains("weights.bin"))
        #expect(error.isUsageError)
    }

    @Test("A folder far over the cap is refused, naming what its files add up to and the largest files")
    func farOverTheCap() throws {
        var files: [String: String] = ["main.py": "print(1)"]
        for index in 0..<20 { files["data/part-\(index).txt"] = String(repeating: "\(index)", count: 10) }
        let directory = try makeDirectory(files)
        defer { try? FileManager.default.removeItem(at: directory) }
        var random = SystemRandomNumberGenerator()
        for (name, size) in [("big.bin", 400_000), ("bigger.bin", 600_000)] {
            let bytes = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &random) })
            try bytes.write(to: directory.appendingPathComponent(name))
        }
        let options = PackageOptions(maxPackageBytes: 100_000)
        let package = try WorkingDirectoryPackage.scan(directory, options: options)
        let error = try #require(throws: PackageError.self) { try package.makeZip(options: options) }
        #expect(error.code == .tooLarge)
        #expect(error.description.contains("bigger.bin (0.6 MiB), big.bin (0.4 MiB)"), "\(error)")
        #expect(error.description.contains("(1.0 MiB of files)"), "\(error)")
    }

    @Test("A socket is left out of the zip and only its name hashed, as Ray does")
    func socket() async throws {
        let directory = try makeDirectory(["main.py": "print(1)"], emptyFolders: ["run"])
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.makeSocket(in: directory.appendingPathComponent("run"), named: "agent.sock")
        let package = try WorkingDirectoryPackage.scan(directory)
        let ray = try await Self.rayPackage(directory)
        #expect(package.uri == ray.uri)
        #expect(try await Self.zipEntries(package.makeZip()) == ray.entries)
    }

    @Test("A FIFO does not block: treated as Ray treats a socket of that name (Ray's SDK itself blocks on it)")
    func fifo() async throws {
        let directory = try makeDirectory(["main.py": "print(1)"])
        let twin = try makeDirectory(["main.py": "print(1)"])
        defer { [directory, twin].forEach { try? FileManager.default.removeItem(at: $0) } }
        let fifo = directory.appendingPathComponent("pipe")
        try #require(mkfifo(fifo.path, 0o644) == 0)
        try await Self.makeSocket(in: twin, named: "pipe")
        let package = try await withTimeLimit(
            .seconds(60),
            onTimeout: {
                // Today's code blocks opening the FIFO for reading: a writer that comes and goes ends the wait.
                let writer = open(fifo.path, O_WRONLY | O_NONBLOCK)
                if writer >= 0 { close(writer) }
            }
        ) {
            let package = try WorkingDirectoryPackage.scan(directory)
            return (package, try package.makeZip())
        }
        let ray = try await Self.rayPackage(twin)
        #expect(package.0.uri == ray.uri)
        #expect(try await Self.zipEntries(package.1) == ray.entries)
    }

    @Test("A folder link back to a folder above it is a named error, not 40 nested copies")
    func symlinkLoop() throws {
        let directory = try makeDirectory(["main.py": "print(1)", "sub/x.py": "x"])
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("sub/up").path, withDestinationPath: "..")
        let error = try #require(throws: PackageError.self) { try WorkingDirectoryPackage.scan(directory) }
        #expect(error.code == .symlinkLoop)
        #expect(error.description.contains("'sub/up'"), "\(error)")
        #expect(error.isUsageError)
    }

    @Test("A folder linked twice, without a loop, is followed both times as Ray does")
    func linkedTwice() async throws {
        let directory = try makeDirectory(["main.py": "print(1)", "shared/x.py": "x"])
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("alias").path, withDestinationPath: "shared")
        let package = try WorkingDirectoryPackage.scan(directory)
        let ray = try await Self.rayPackage(directory)
        #expect(package.uri == ray.uri)
        #expect(try await Self.zipEntries(package.makeZip()) == ray.entries)
    }

    @Test("A file that cannot be read is a named error, not an empty file")
    func unreadable() throws {
        let directory = try makeDirectory(["main.py": "print(1)", "secret.bin": "s"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let secret = directory.appendingPathComponent("secret.bin")
        if geteuid() == 0 {
            // Permissions do not stop root: a regular file whose read fails for everyone instead (reading
            // /proc/self/mem at offset 0 fails with EIO).
            try FileManager.default.removeItem(at: secret)
            try FileManager.default.createSymbolicLink(atPath: secret.path, withDestinationPath: "/proc/self/mem")
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: secret.path)
        }
        let error = try #require(throws: PackageError.self) { try WorkingDirectoryPackage.scan(directory) }
        #expect(error.code == .unreadable)
        #expect(error.description.contains("'secret.bin'"), "\(error)")
    }

    /// Binds a Unix socket at `folder/name` (the file stays after the process ends).
    static func makeSocket(in folder: URL, named name: String) async throws {
        let python = try TestEnvironment.environment(.current).python
        let result = try await CommandRunner.run(
            python,
            [
                "-c", "import os, socket, sys; os.chdir(sys.argv[1]); socket.socket(socket.AF_UNIX).bind(sys.argv[2])",
                folder.path, name,
            ])
        try #require(result.status == 0, "\(result)")
    }

    @Test("Missing and non-directory paths are usage errors")
    func missing() throws {
        let error = try #require(throws: PackageError.self) {
            try WorkingDirectoryPackage.scan(URL(fileURLWithPath: "/nonexistent/raylan"))
        }
        #expect(error.code == .notFound)
        #expect(error.description.contains("/nonexistent/raylan"))
    }
}
