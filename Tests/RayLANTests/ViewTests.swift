import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

/// Headless Chromium, driven by `scripts/browser_check.py`. A browser test that cannot run is a failure unless
/// `RAYLAN_SKIP_BROWSER=1` is set (the README's test command installs Chromium where apt is).
enum BrowserCheck {
    static let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/browser_check.py").path
    static let skipped = ProcessInfo.processInfo.environment["RAYLAN_SKIP_BROWSER"] == "1"
    static var isInstalled: Bool {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].contains {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    struct Page: Decodable {
        struct Figure: Decodable {
            var hidden: Bool
            var classes: [String?]
            var loaded: Bool
        }
        var figures: [Figure]
        var console: [String]
        var stats: [String]
    }

    static func call<Answer: Decodable>(_ arguments: [String], as: Answer.Type) async throws -> Answer {
        let result = try await CommandRunner.run(
            "/usr/bin/env", ["python3", script] + arguments, timeout: .seconds(180))
        try #require(result.status == 0, "\(result)")
        return try JSONDecoder().decode(Answer.self, from: Data(result.stdout.utf8))
    }

    static func page(_ url: String) async throws -> Page { try await call(["dom", url], as: Page.self) }

    static func status(_ url: String) async throws -> Int {
        struct Status: Decodable { var status: Int }
        return try await call(["status", url], as: Status.self).status
    }

    static func screenshot(_ url: String, to path: String) async throws -> Bool {
        struct Shot: Decodable { var written: Bool }
        return try await call(["shot", url, path], as: Shot.self).written
    }
}

extension RayClusterTests.Main {
    @Suite("The local view, in a browser")
    struct ViewTests {
        @Test(
            "detect --view: the run's gallery on loopback behind its token, every picture with its boxes, a class filter; the journal is left as the run wrote it"
        )
        func gallery() async throws {
            if BrowserCheck.skipped { return }
            try #require(
                BrowserCheck.isInstalled, "No Chromium here: apt-get install chromium, or RAYLAN_SKIP_BROWSER=1.")
            let cluster = try requireCluster()
            let out = try TestEnvironment.makeTemporaryDirectory("raylan-view")
            defer { try? FileManager.default.removeItem(at: out) }
            let samples = DetectionTests.samples.path
            let command = try RunningCommand(raylan: [
                "detect", samples, "--address", cluster.address.description, "--out", out.path, "--view",
            ])
            defer { command.killGroup() }
            let ended = await eventually(timeout: .seconds(300)) { command.stderr.contains("The run ended") }
            if !ended { command.interrupt() }
            try #require(ended, "\(command.stderr)")
            let url = try #require(
                command.stderr.split(separator: "\n").first { $0.hasPrefix("View: ") }.map { String($0.dropFirst(6)) })
            let journalURL = out.appendingPathComponent("detections.jsonl")
            let journal = try Data(contentsOf: journalURL)
            let records = DetectionJournal.read(journalURL)
            try #require(records.count == 12)

            // Loopback only, and nothing without the token.
            let port = try #require(URL(string: url)?.port)
            let listening = try await CommandRunner.run("/usr/bin/env", ["ss", "-Hltn", "sport = :\(port)"])
            let locals = listening.stdout.split(separator: "\n").map {
                $0.split(separator: " ", omittingEmptySubsequences: true)[3]
            }
            #expect(locals == ["127.0.0.1:\(port)"], "\(listening)")
            #expect(try await BrowserCheck.status("http://127.0.0.1:\(port)/") == 403)
            #expect(try await BrowserCheck.status("http://127.0.0.1:\(port)/api/run") == 403)
            let token = try #require(URL(string: url)?.pathComponents.last)
            let wrong = String(token.reversed())
            #expect(try await BrowserCheck.status("http://127.0.0.1:\(port)/\(wrong)/api/run") == 403)
            #expect(try await BrowserCheck.status(url + "api/run") == 200)

            // Every input, its picture loaded, as many boxes as its line has, of its classes.
            let page = try await BrowserCheck.page(url)
            #expect(page.console.isEmpty, "\(page.console)")
            #expect(page.stats.first?.contains("12 of 12 answered") == true, "\(page.stats)")
            try #require(page.figures.count == 12)
            for (figure, record) in zip(page.figures, records) {
                let detections = try #require(record.result?.detections)
                #expect(!figure.hidden && figure.loaded, "\(record.path)")
                #expect(
                    figure.classes.compactMap { $0 }.sorted() == detections.map(\.className).sorted(), "\(record.path)")
            }
            #expect(page.figures.contains { !$0.classes.isEmpty })

            // One class: the inputs with a circle, and only circles.
            let filtered = try await BrowserCheck.page(url + "#classes=circle")
            #expect(filtered.console.isEmpty, "\(filtered.console)")
            let withCircle = records.map { $0.result?.detections.contains { $0.className == "circle" } == true }
            #expect(withCircle.contains(true) && withCircle.contains(false))
            #expect(filtered.figures.map { !$0.hidden } == withCircle)
            #expect(filtered.figures.allSatisfy { $0.classes.allSatisfy { $0 == "circle" } })

            // The README's pictures (committed from a run with RAYLAN_VIEW_SCREENSHOTS=docs/images).
            let shots =
                ProcessInfo.processInfo.environment["RAYLAN_VIEW_SCREENSHOTS"].map { URL(fileURLWithPath: $0) } ?? out
            #expect(try await BrowserCheck.screenshot(url, to: shots.appendingPathComponent("view-gallery.png").path))
            #expect(
                try await BrowserCheck.screenshot(
                    url + "#image=3", to: shots.appendingPathComponent("view-detail.png").path))

            command.interrupt()
            let result = await command.wait(timeout: .seconds(60))
            #expect(result.status == 0, "\(result)")
            #expect(try Data(contentsOf: journalURL) == journal, "the view wrote to the journal")
        }
    }
}

/// `RunGallery` reading a journal as a run writes it.
@Suite("Run gallery")
struct RunGalleryTests {
    static func line(_ path: String, classes: [String]) -> String {
        let detections = classes.enumerated().map { index, name in
            Detection(box: [1, 2, 3, 4], score: 0.5, classID: index, className: name)
        }
        let record = DetectionRecord(
            path: path,
            result: DetectionResult(
                model: "m", image: .init(width: 10, height: 8, format: "jpeg"), detections: detections, batchSize: 1,
                timingsMs: [:]))
        return String(decoding: try! JSONEncoder().encode(record), as: UTF8.self)
    }

    @Test("Lines come as they are written; a torn line waits for its end; a retried input keeps its place")
    func follows() async throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-gallery")
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = folder.appendingPathComponent("detections.jsonl")
        let gallery = RunGallery(folder: folder, inputRoot: folder)
        #expect(await gallery.page(since: 0).entries.isEmpty)

        let first = Self.line("a.jpg", classes: ["cat"]) + "\n"
        let second = Self.line("b.jpg", classes: ["dog", "cat"])
        try Data((first + second.prefix(20)).utf8).write(to: journal)
        let page1 = await gallery.page(since: 0)
        #expect(page1.entries.map(\.name) == ["a.jpg"])

        let handle = try FileHandle(forWritingTo: journal)
        try handle.seekToEnd()
        let retry = String(
            decoding: try JSONEncoder().encode(DetectionRecord(path: "a.jpg", error: .init(.unavailable, "x"))),
            as: UTF8.self)
        try handle.write(contentsOf: Data((second.dropFirst(20) + "\n" + retry + "\n").utf8))
        try handle.close()
        let page2 = await gallery.page(since: page1.version)
        #expect(page2.entries.map(\.name) == ["a.jpg", "b.jpg"])
        #expect(page2.entries.map(\.index) == [0, 1])
        #expect(page2.entries[0].error?.code == .unavailable)
        #expect(page2.entries[1].detections.map(\.className) == ["dog", "cat"])
        #expect(page2.progress == .init(state: .finished, total: nil, done: 2, failed: 1))
        #expect(await gallery.page(since: page2.version).entries.isEmpty)
    }

    @Test("A journal moved aside by a new run starts the gallery again")
    func replaced() async throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-gallery")
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = folder.appendingPathComponent("detections.jsonl")
        try Data((Self.line("a.jpg", classes: []) + "\n" + Self.line("b.jpg", classes: []) + "\n").utf8).write(
            to: journal)
        let gallery = RunGallery(folder: folder, inputRoot: folder)
        #expect(await gallery.page(since: 0).entries.count == 2)
        try FileManager.default.moveItem(at: journal, to: folder.appendingPathComponent("detections.jsonl.1"))
        try Data((Self.line("c.jpg", classes: []) + "\n").utf8).write(to: journal)
        let page = await gallery.page(since: 0)
        #expect(page.entries.map(\.name) == ["c.jpg"])
    }

    @Test(
        "Pictures: a streamed run's input files; an --on-cluster line's annotated copy by a plain name inside the folder only"
    )
    func pictures() async throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-gallery")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outside = try TestEnvironment.makeTemporaryDirectory("raylan-outside")
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data([0xFF, 0xD8]).write(to: folder.appendingPathComponent("a.jpg"))
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("annotated"), withIntermediateDirectories: true)
        try Data([0xFF, 0xD8]).write(to: folder.appendingPathComponent("annotated/x.jpg"))
        try Data([0xFF, 0xD8]).write(to: outside.appendingPathComponent("secret.jpg"))
        try FileManager.default.createSymbolicLink(
            at: folder.appendingPathComponent("annotated/link.jpg"),
            withDestinationURL: outside.appendingPathComponent("secret.jpg"))
        func clusterLine(_ path: String, annotated: String) -> String {
            #"{"path":"\#(path)","node":"n","image":{"width":4,"height":3,"format":"jpeg"},"detections":[],"annotated":"\#(annotated)"}"#
        }
        let lines = [
            Self.line("a.jpg", classes: []), Self.line("missing.jpg", classes: []),
            clusterLine("/data/x.jpg", annotated: "annotated/x.jpg"),
            clusterLine("/data/y.jpg", annotated: "../\(outside.lastPathComponent)/secret.jpg"),
            clusterLine("/data/z.jpg", annotated: outside.appendingPathComponent("secret.jpg").path),
            clusterLine("/data/w.jpg", annotated: "annotated/link.jpg"),
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(
            to: folder.appendingPathComponent("detections.jsonl"))
        let gallery = RunGallery(folder: folder, inputRoot: folder)
        let entries = await gallery.page(since: 0).entries
        #expect(entries.map(\.hasImage) == [true, false, true, false, false, false])
        #expect(entries.map(\.boxesDrawn) == [false, false, true, false, false, false])
        #expect(await gallery.imageFile(at: 2)?.lastPathComponent == "x.jpg")
        #expect(await gallery.imageFile(at: 3) == nil)
    }
}
