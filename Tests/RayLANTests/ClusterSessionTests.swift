import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// How the client follows a session's pages (``ClusterSession/follow(wait:line:progress:)``), against the golden
/// pages of `contracts/` played by a fake gateway (nothing here is Ray).
@Suite("Following a session on the cluster")
struct ClusterSessionTests {
    static func page(_ name: String) throws -> JSONValue {
        try JSONDecoder().decode(
            JSONValue.self, from: Data(contentsOf: ContractTests.folder.appendingPathComponent(name)))
    }

    @Test("Every line in order across pages, each new progress once, and the session's failure after its last lines")
    func follow() async throws {
        let running = try Self.page("poll_page.json")
        let failed = try Self.page("poll_page_failed.json")
        guard case .object(var quiet) = running else { throw CancellationError() }
        quiet["lines"] = .array([])
        let plan = try [running, .object(quiet), failed].map { try FakeSession.value($0) }
        try await FakeSession.with(plan) { session, server in
            var lines: [ClusterSession.Line] = []
            var progress: [JSONValue] = []
            let error = await #expect(throws: OnClusterError.self) {
                try await session.follow(wait: .milliseconds(10)) {
                    lines.append($0)
                } progress: {
                    progress.append($0)
                }
            }
            #expect(error?.code.rawValue == "session_failed")
            #expect(error?.message == failed["error"]?["message"]?.stringValue)
            // Each line handed on as the session's own text, unchanged.
            #expect(.array(lines.map { .string($0.text) }) == running["lines"])
            #expect(progress == [running["progress"], failed["progress"]].compactMap { $0 })
            // Each poll asks from where the previous page ended.
            let cursors = server.requests.compactMap { request -> Double? in
                let body = try? JSONDecoder().decode(JSONValue.self, from: Data(request.body.utf8))
                return body?["kwargs"]?["cursor"]?.doubleValue
            }
            #expect(FakeSession.methods(server) == ["poll", "poll", "poll"])
            #expect(cursors == [0, 14, 14])
        }
    }

    @Test("A video's local journal holds each frame line as the session made it, byte for byte")
    func localJournalKeepsTheText() throws {
        let folder = try TestEnvironment.makeTemporaryDirectory("local-journal")
        defer { try? FileManager.default.removeItem(at: folder) }
        let page = try Self.page("poll_page.json")
        let texts = try #require(
            page["lines"].flatMap { value -> [String]? in
                guard case .array(let lines) = value else { return nil }
                return lines.compactMap(\.stringValue)
            })
        // Keys in the session's order and numbers as Python writes them: a re-encoding (sorted keys, Swift's own
        // number text) would change the line.
        let odd =
            #"{"type":"frame","frame":3,"time":0.1,"detections":[{"box":[1.5,2,3,4],"score":0.25,"class_id":0,"class_name":"a/b"}]}"#
        let journal = try DetectionJournal.new(in: folder)
        for text in texts + [odd] {
            let line = ClusterSession.Line(text: text)
            guard case .frame(let frame)? = try VideoRun.event(from: line) else {
                Issue.record("not a frame: \(text)")
                continue
            }
            // The frame keeps the text (for `raylan detect --json`), which is not part of its value.
            #expect(frame.text == text)
            #expect(frame == (try line.decode(FrameResult.self)))
            try journal.append(line: line.text)
        }
        let written = try String(contentsOf: journal.url, encoding: .utf8)
        #expect(written == (texts + [odd]).map { $0 + "\n" }.joined())
    }
}
