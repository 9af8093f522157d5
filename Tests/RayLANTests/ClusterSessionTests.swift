import Foundation
import RayLANTesting
import Testing

@testable import RayLAN

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
        quiet["items"] = .array([])
        let plan = try [running, .object(quiet), failed].map { try FakeSession.value($0) }
        try await FakeSession.with(plan) { session, server in
            var lines: [JSONValue] = []
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
            #expect(JSONValue.array(lines) == running["items"])
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
}
