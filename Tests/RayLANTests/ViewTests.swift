import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

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
        // The cluster side's Python: `live` needs its websockets package.
        let python = try TestEnvironment.environment(.current).python
        let result = try await CommandRunner.run(python, [script] + arguments, timeout: .seconds(180))
        try #require(result.status == 0, "\(result)")
        return try JSONDecoder().decode(Answer.self, from: Data(result.stdout.utf8))
    }

    static func page(_ url: String) async throws -> Page { try await call(["dom", url], as: Page.self) }

    static func status(_ url: String) async throws -> Int {
        struct Status: Decodable { var status: Int }
        return try await call(["get", url], as: Status.self).status
    }

    /// The live page looked at twice, 2 s apart.
    struct Live: Decodable {
        struct Look: Decodable {
            var frame: Int?
            var loaded: Bool
            var boxes: [String?]
            var chart: [String: Int]
            var connection: String
        }
        var looks: [Look]
        var pictureDiffers: Bool
        var console: [String]

        enum CodingKeys: String, CodingKey {
            case looks, console
            case pictureDiffers = "picture_differs"
        }
    }

    static func live(_ url: String, screenshots folder: URL) async throws -> Live {
        try await call(["live", url, folder.path], as: Live.self)
    }

    /// The addresses the port is listened on (`ss`).
    static func listeners(on port: Int) async throws -> [String] {
        let listening = try await CommandRunner.run("/usr/bin/env", ["ss", "-Hltn", "sport = :\(port)"])
        return listening.stdout.split(separator: "\n").map {
            String($0.split(separator: " ", omittingEmptySubsequences: true)[3])
        }
    }

    /// Where the README's pictures go: RAYLAN_VIEW_SCREENSHOTS (docs/images when they are made again), else `folder`.
    static func screenshots(else folder: URL) -> URL {
        ProcessInfo.processInfo.environment["RAYLAN_VIEW_SCREENSHOTS"].map { URL(fileURLWithPath: $0) } ?? folder
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
            #expect(try await BrowserCheck.listeners(on: port) == ["127.0.0.1:\(port)"])
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
            let shots = BrowserCheck.screenshots(else: out)
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

extension RayClusterTests.Main.ViewTests {
    @Test(
        "detect --view on a live stream: the picture moves (two screenshots 2 s apart differ), its boxes are drawn, the counts chart has points, no console errors; loopback only"
    )
    func live() async throws {
        if BrowserCheck.skipped { return }
        try #require(BrowserCheck.isInstalled, "No Chromium here: apt-get install chromium, or RAYLAN_SKIP_BROWSER=1.")
        let cluster = try requireCluster()
        try await RayClusterTests.Main.DetectionTests.deployBoth(cluster)
        let (server, stream) = try await VideoFixture.mjpegServer()
        defer { server.killGroup() }
        let out = try TestEnvironment.makeTemporaryDirectory("raylan-live")
        defer { try? FileManager.default.removeItem(at: out) }
        let command = try RunningCommand(raylan: [
            "detect", stream, "--address", cluster.address.description, "--out", out.path, "--view",
            "--view-fps", "5",
        ])
        defer { command.killGroup() }
        var url: String?
        _ = await eventually(timeout: .seconds(120)) {
            url = command.stderr.split(separator: "\n").first { $0.hasPrefix("View: ") }.map { String($0.dropFirst(6)) }
            return url != nil
        }
        let view = try #require(url, "\(command.stderr)")
        let port = try #require(URL(string: view)?.port)
        #expect(try await BrowserCheck.listeners(on: port) == ["127.0.0.1:\(port)"])
        #expect(try await BrowserCheck.status("http://127.0.0.1:\(port)/live/events") == 403)
        // The first picture has come from the cluster before the page is looked at.
        struct Snapshot: Decodable {
            struct Source: Decodable { var preview_frame: Int? }
            var sources: [Source]
        }
        struct Answer: Decodable { var body: Snapshot? }
        let pictured = await eventually(timeout: .seconds(120)) {
            let answer = try? await BrowserCheck.call(["get", view + "api/live"], as: Answer.self)
            return answer?.body?.sources.first?.preview_frame != nil
        }
        try #require(pictured, "no picture came: \(command.stderr)")

        let live = try await BrowserCheck.live(view, screenshots: BrowserCheck.screenshots(else: out))
        #expect(live.console.isEmpty, "\(live.console)")
        let (first, second) = (live.looks[0], live.looks[1])
        #expect(live.pictureDiffers, "\(live.looks)")
        #expect((first.frame ?? .max) < (second.frame ?? .min), "\(live.looks)")
        #expect(second.loaded && second.connection == "live", "\(second)")
        let shapes: Set<String?> = ["circle", "square", "star", "triangle"]
        #expect(!second.boxes.isEmpty && second.boxes.allSatisfy(shapes.contains), "\(second.boxes)")
        #expect(!second.chart.isEmpty && second.chart.values.allSatisfy { $0 >= 2 }, "\(second.chart)")

        command.interrupt()
        let result = await command.wait(timeout: .seconds(60))
        #expect(result.status == 130, "\(result)")
        // The run's results were written as usual beside the view.
        let journal = try String(contentsOf: out.appendingPathComponent("detections.jsonl"), encoding: .utf8)
        #expect(journal.split(separator: "\n").count > (second.frame ?? 0) / 10, "\(journal.prefix(300))")
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

    @Test(
        "An --on-cluster run's view: only the lines it is given (not the folder's earlier journal); its annotated copies show once downloaded"
    )
    func givenLines() async throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-gallery")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data((Self.line("old.jpg", classes: []) + "\n").utf8).write(
            to: folder.appendingPathComponent("detections.jsonl"))
        let gallery = RunGallery(folder: folder, inputRoot: folder, followsJournal: false)
        await gallery.started(total: 1)
        let line =
            #"{"path":"/data/x.jpg","node":"n","result":{"model":"m","image":{"width":4,"height":3,"format":"jpeg"},"detections":[],"batch_size":1,"timings_ms":{}},"annotated":"annotated/x.jpg"}"#
        await gallery.take(Data(line.utf8))
        let running = await gallery.page(since: 0)
        #expect(running.entries.map(\.name) == ["/data/x.jpg"] && running.entries[0].hasImage == false)
        #expect(running.progress == .init(state: .running, total: 1, done: 1, failed: 0))
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("annotated"), withIntermediateDirectories: true)
        try Data([0xFF, 0xD8]).write(to: folder.appendingPathComponent("annotated/x.jpg"))
        await gallery.finish()
        let finished = await gallery.page(since: running.version)
        #expect(finished.entries.map(\.hasImage) == [true] && finished.progress.state == .finished)
    }

    @Test("A run's events count its inputs and lines but never make an ended gallery run again (one may come late)")
    func lateEvents() async throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-gallery")
        defer { try? FileManager.default.removeItem(at: folder) }
        let gallery = RunGallery(folder: folder, inputRoot: folder, followsJournal: false)
        await gallery.started(total: nil)
        let progress = DetectionRun.Progress(total: 7, done: 0, failed: 0, skipped: 0, seconds: 0)
        await gallery.take(DetectionEvent.started(progress))
        #expect(await gallery.page(since: 0).progress == .init(state: .running, total: 7, done: 0, failed: 0))
        let line = try JSONDecoder().decode(
            DetectionRecord.self,
            from: Data(#"{"path":"/data/x.jpg","node":"n","error":{"code":"decode_failed","message":"x"}}"#.utf8))
        await gallery.take(DetectionEvent.answered(line))
        await gallery.finish()
        await gallery.take(DetectionEvent.progress(progress))
        let page = await gallery.page(since: 0)
        #expect(page.progress == .init(state: .finished, total: 7, done: 1, failed: 1))
        #expect(page.entries.map(\.name) == ["/data/x.jpg"])
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
            #"{"path":"\#(path)","node":"n","result":{"model":"m","image":{"width":4,"height":3,"format":"jpeg"},"detections":[],"batch_size":1,"timings_ms":{}},"annotated":"\#(annotated)"}"#
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

/// `LiveFeed`: what the live view keeps of a run's events.
@Suite("Live feed")
struct LiveFeedTests {
    /// A frame line as a session sends it, read as the run reads it.
    static func frame(_ index: Int, at time: Double, _ classes: [String], failed: Bool = false) throws -> DetectionEvent
    {
        let detections = classes.map { name in
            #"{"box":[0,0,1,1],"score":0.9,"class_id":\#(name == "circle" ? 0 : 1),"class_name":"\#(name)"}"#
        }
        let body =
            failed
            ? #""error":{"code":"inference_failed","message":"x"}"#
            : #""detections":[\#(detections.joined(separator: ","))]"#
        let text = #"{"type":"frame","frame":\#(index),"time":\#(time),\#(body)}"#
        return try #require(try VideoRun.event(from: ClusterSession.Line(text: text)))
    }

    @Test("Counts per class: the most in one frame per second of the source, the oldest seconds dropped past the bound")
    func series() throws {
        let feed = LiveFeed(sources: ["cam"], seriesLength: 2)
        feed.take(.opened(.object([:])), source: "cam")
        feed.take(try Self.frame(0, at: 0.1, ["square"]), source: "cam")
        feed.take(try Self.frame(1, at: 0.5, ["square", "square", "circle"]), source: "cam")
        feed.take(try Self.frame(2, at: 1.2, ["circle"]), source: "cam")
        feed.take(try Self.frame(3, at: 1.4, [], failed: true), source: "cam")
        feed.take(try Self.frame(4, at: 2.0, []), source: "cam")
        feed.take(try Self.frame(9, at: 0, ["star"]), source: "other")  // not a source: ignored
        let source = try #require(feed.snapshot().sources.first)
        #expect(source.series.map(\.time) == [1, 2])
        #expect(source.series.map(\.counts) == [["circle": 1], [:]])
        #expect(source.classes == ["circle": 0, "square": 1])
        #expect(source.stats.errors == 1 && source.stats.state == "running")
        #expect(feed.snapshot().sources.count == 1 && !feed.isOver)
    }

    @Test("A picture is kept (the newest only) with its latency; the run's end and failure are its state")
    func picturesAndStates() throws {
        let feed = LiveFeed(sources: ["a", "b"])
        func preview(_ frame: Int) throws -> DetectionEvent {
            let header =
                #"{"type":"preview","frame":\#(frame),"time":1,"width":4,"height":3,"detections":[],"latency_ms":12.5}"#
            return .preview(try VideoPreview(Data((header + "\n").utf8) + Data([0xFF, 0xD8])))
        }
        feed.take(try preview(3), source: "a")
        feed.take(try preview(7), source: "a")
        #expect(feed.preview(at: 0)?.header.frame == 7)
        #expect(feed.preview(at: 1) == nil && feed.preview(at: 5) == nil)
        #expect(feed.snapshot().sources[0].previewFrame == 7)
        #expect(feed.snapshot().sources[0].stats.latencyMs == 12.5)
        feed.failed(source: "b", "stream_lost: gone")
        #expect(!feed.isOver)
        feed.finish()
        #expect(feed.isOver)
        #expect(feed.snapshot().sources.map(\.stats.state) == ["finished", "failed"])
        #expect(feed.snapshot().sources[1].stats.message == "stream_lost: gone")
    }

    @Test("A finished run's journals: each source's frames and counts; lines that are not frames are skipped")
    func finished() throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-live-feed")
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = folder.appendingPathComponent("detections.jsonl")
        let lines = [
            #"{"type":"frame","frame":0,"time":0.0,"detections":[{"box":[0,0,1,1],"score":0.9,"class_id":2,"class_name":"star"}]}"#,
            #"{"type":"event","event":"reconnected","message":""}"#, "not json",
            #"{"type":"frame","frame":5,"time":1.5,"error":{"code":"inference_failed","message":"x"}}"#,
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: journal)
        #expect(try RunGallery.isVideoJournal(journal))
        let feed = try LiveFeed.finished([("cam", journal)])
        let source = try #require(feed.snapshot().sources.first)
        #expect(source.stats.framesProcessed == 2 && source.stats.errors == 1 && source.stats.state == "finished")
        #expect(source.series.map(\.counts) == [["star": 1], [:]])
        #expect(feed.isOver)
    }
}

/// `raylan view`'s refusals, before anything is served.
@Suite("raylan view's refusals")
struct ViewCommandTests {
    @Test("A folder that is missing, or holds no journal: exit 64 naming it")
    func refusals() async throws {
        let empty = try TestEnvironment.makeTemporaryDirectory("raylan-view-empty")
        defer { try? FileManager.default.removeItem(at: empty) }
        for (folder, says) in [(empty.path + "/missing", "No folder"), (empty.path, "has no detections.jsonl")] {
            let result = try await CommandRunner.raylan(["view", folder])
            #expect(result.status == 64, "\(result)")
            #expect(result.stderr.contains(says) && result.stdout.isEmpty, "\(result)")
        }
    }
}
