#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// Nothing the cluster sends back is trusted as a path: a session's output names, downloaded against a fake gateway
/// that plays the session (no Ray), land only inside the run's output folder, through a temporary file.
@Suite("Output names from the cluster are not trusted as paths")
struct ClusterPathSafetyTests {
    /// A private tree: `root/parent/out` is the output folder, with a folder `keep/` (holding `inside.txt`), a
    /// file `summary.json` and a symlink `link` to `root/elsewhere/` (holding `secret.txt`). Every name refused
    /// below would, taken as a path, reach something under `root`.
    struct Sandbox {
        let root: URL
        let output: URL

        init() throws {
            root = try TestEnvironment.makeTemporaryDirectory("raylan-paths")
            output = root.appendingPathComponent("parent/out")
            let files = FileManager.default
            try files.createDirectory(at: output.appendingPathComponent("keep"), withIntermediateDirectories: true)
            try Data("mine".utf8).write(to: output.appendingPathComponent("keep/inside.txt"))
            try Data("old".utf8).write(to: output.appendingPathComponent("summary.json"))
            let elsewhere = root.appendingPathComponent("elsewhere")
            try files.createDirectory(at: elsewhere, withIntermediateDirectories: true)
            try Data("secret".utf8).write(to: elsewhere.appendingPathComponent("secret.txt"))
            try files.createSymbolicLink(
                atPath: output.appendingPathComponent("link").path, withDestinationPath: elsewhere.path)
        }

        func remove() { try? FileManager.default.removeItem(at: root) }

        /// Every entry under `folder` (default the root), recursively and hidden ones included: a folder with `/`,
        /// a file with its contents, a link with its destination (not followed).
        func listing(_ folder: URL? = nil) throws -> [String] {
            let files = FileManager.default
            let top = (folder ?? root).path
            var lines: [String] = []
            func walk(_ relative: String) throws {
                for name in try files.contentsOfDirectory(atPath: top + relative).sorted() {
                    let child = relative + "/" + name
                    let path = top + child
                    switch try files.attributesOfItem(atPath: path)[.type] as? FileAttributeType {
                    case .typeDirectory?:
                        lines.append(child + "/")
                        try walk(child)
                    case .typeSymbolicLink?:
                        lines.append(child + " -> " + (try files.destinationOfSymbolicLink(atPath: path)))
                    default:
                        lines.append(
                            child + " = " + String(decoding: files.contents(atPath: path) ?? Data(), as: UTF8.self))
                    }
                }
            }
            try walk("")
            return lines
        }
    }

    /// A name as the cluster may send it, shown quoted and escaped in the test's name (a NUL or a newline too).
    struct Name: Sendable, CustomTestStringConvertible, ExpressibleByStringLiteral {
        var raw: String
        init(stringLiteral raw: String) { self.raw = raw }
        var testDescription: String { String(reflecting: raw) }
    }

    @Test(
        "A listed name that leaves the output folder, or meets a folder, file or symlink on disk, is refused as bad_response, and nothing around the folder changes",
        arguments: ["../../x", "/etc/x", "a/../../x", "..", "keep", "link", "link/x", "summary.json/x", "keep/../../x"])
    func refusedName(_ name: Name) async throws {
        let name = name.raw
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let before = try sandbox.listing()
        #expect(before.contains("/parent/out/keep/inside.txt = mine"))
        let plan = [try FakeSession.outputs([(name, 5)]), FakeSession.bytes("hello")]
        try await FakeSession.with(plan) { session, server in
            let listed = try #require(try await session.outputs().first)
            #expect(listed.name == name)
            let error = await #expect(throws: OnClusterError.self) {
                try await session.download(listed, into: sandbox.output)
            }
            #expect(error?.code == .badResponse)
            #expect(error?.message.contains(String(reflecting: name)) == true, "\(String(describing: error))")
            // Refused before anything was asked of the session, so nothing was read either.
            #expect(FakeSession.methods(server) == ["outputs"])
        }
        #expect(try sandbox.listing() == before)
        let inside = try String(contentsOf: sandbox.output.appendingPathComponent("keep/inside.txt"), encoding: .utf8)
        #expect(inside == "mine")
    }

    @Test(
        "Names that are not plain relative paths are refused before the disk is looked at",
        arguments: [
            "", ".", "..", "../x", "a/..", "a/.", "./a", "a//b", "a/", "/a", "//a", "a\\b", "..\\x", "a\u{0}b",
            "a\nb", "a\u{7f}b", ".hidden", "annotated/.a.jpg.part-0123", "a/\u{0}/b",
        ])
    func refusedWithoutDisk(_ name: Name) throws {
        let name = name.raw
        let folder = URL(fileURLWithPath: "/nonexistent/raylan-out")
        let error = #expect(throws: OnClusterError.self) { try DownloadTarget(name, in: folder) }
        #expect(error?.code == .badResponse)
        #expect(error?.message.contains(String(reflecting: name)) == true, "\(String(describing: error))")
        #expect(DownloadTarget.problem(with: name) != nil)
    }

    @Test("A '..' or '.' component is named as such in the refusal, not as a hidden name")
    func dotComponentsNamed() {
        #expect(DownloadTarget.problem(with: "annotated/../../x") == "it has a '..' component")
        #expect(DownloadTarget.problem(with: "annotated/./x") == "it has a '.' component")
        #expect(DownloadTarget.problem(with: "annotated/.x") == "its component '.x' is a hidden name")
    }

    @Test(
        "Plain relative names, sub-folders included, are taken as they are",
        arguments: ["annotated/a.jpg", "detections.jsonl", "a b/c d.jpg", "é/ü.jpg", "a..b", "x..", "a.b/c"])
    func plainName(_ name: Name) throws {
        let name = name.raw
        let folder = URL(fileURLWithPath: "/somewhere/out")
        let target = try DownloadTarget(name, in: folder)
        #expect(target.url.path == "/somewhere/out/" + name)
        #expect(target.components.joined(separator: "/") == name)
    }

    @Test("A good name in a sub-folder downloads in pieces and is renamed into place, nothing else left")
    func goodName() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let before = try sandbox.listing()
        let plan = [
            try FakeSession.outputs([("annotated/a.jpg", 10)]), FakeSession.bytes("hello"), FakeSession.bytes("world"),
        ]
        try await FakeSession.with(plan) { session, server in
            let listed = try #require(try await session.outputs().first)
            let url = try await session.download(listed, into: sandbox.output)
            #expect(url.path == sandbox.output.path + "/annotated/a.jpg")
            #expect(FakeSession.methods(server) == ["outputs", "read", "read"])
        }
        let added = Set(try sandbox.listing()).subtracting(before)
        #expect(added == ["/parent/out/annotated/", "/parent/out/annotated/a.jpg = helloworld"])
    }

    @Test("An existing regular file of the listed name is replaced whole")
    func replacesFile() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let plan = [try FakeSession.outputs([("summary.json", 3)]), FakeSession.bytes("new")]
        try await FakeSession.with(plan) { session, _ in
            let listed = try #require(try await session.outputs().first)
            _ = try await session.download(listed, into: sandbox.output)
        }
        // The file replaced, nothing else touched and no part file left.
        let elsewhere = sandbox.root.appendingPathComponent("elsewhere").path
        #expect(
            try sandbox.listing(sandbox.output) == [
                "/keep/", "/keep/inside.txt = mine", "/link -> " + elsewhere, "/summary.json = new",
            ])
    }

    @Test("While a download runs the bytes are in a hidden part file; when it fails, neither it nor its folder is left")
    func partialFile() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let before = try sandbox.listing()
        let plan = [
            try FakeSession.outputs([("annotated/a.jpg", 10)]), FakeSession.bytes("hello"),
            FakeSession.stalledBytes("wor"),
        ]
        let configuration = RayCluster.Configuration(timeouts: .init(read: .seconds(1)))
        try await FakeSession.with(plan, configuration: configuration) { session, server in
            let listed = try #require(try await session.outputs().first)
            let folder = sandbox.output.appendingPathComponent("annotated")
            let download = Task { try await session.download(listed, into: sandbox.output) }
            // The first piece is on disk under a part name while the second is stalled; the target is not there yet.
            let partial = await eventually(timeout: .seconds(30), every: .milliseconds(20)) {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
                guard names.count == 1, let name = names.first, name.hasPrefix(".a.jpg.part-") else { return false }
                return FileManager.default.contents(atPath: folder.appendingPathComponent(name).path)
                    == Data("hello".utf8)
            }
            #expect(partial)
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("a.jpg").path))
            let pid = server.process.pid
            _ = try await withTimeLimit(.seconds(60), onTimeout: { kill(pid, SIGKILL) }) {
                await #expect(throws: ClusterError.self) { try await download.value }
            }
        }
        #expect(try sandbox.listing() == before)
    }

    @Test("A short download is an error and leaves nothing")
    func shortDownload() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let before = try sandbox.listing()
        let plan = [
            try FakeSession.outputs([("annotated/a.jpg", 10)]), FakeSession.bytes("hello"), FakeSession.bytes(""),
        ]
        try await FakeSession.with(plan) { session, server in
            let listed = try #require(try await session.outputs().first)
            let error = await #expect(throws: OnClusterError.self) {
                try await session.download(listed, into: sandbox.output)
            }
            #expect(error?.code == .sessionFailed)
            #expect(FakeSession.methods(server) == ["outputs", "read", "read"])
        }
        #expect(try sandbox.listing() == before)
    }

    @Test("A piece longer than asked for is a bad response and leaves nothing")
    func longPiece() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let before = try sandbox.listing()
        let plan = [try FakeSession.outputs([("a.txt", 3)]), FakeSession.bytes("too long")]
        try await FakeSession.with(plan) { session, _ in
            let listed = try #require(try await session.outputs().first)
            let error = await #expect(throws: OnClusterError.self) {
                try await session.download(listed, into: sandbox.output)
            }
            #expect(error?.code == .badResponse)
        }
        #expect(try sandbox.listing() == before)
    }
}
