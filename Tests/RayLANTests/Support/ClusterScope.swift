import Foundation
import RayLAN
import RayLANTesting
import Testing

/// Starts a private local Ray once for a whole suite (and the suites nested in it) and stops it
/// afterwards, also when tests fail. Tests read it with ``requireCluster()``.
struct ClusterScope: SuiteTrait, TestScoping {
    let kind: TestCluster.Kind

    var isRecursive: Bool { false }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await TestCluster.with(kind) { cluster in
            try await CurrentCluster.$value.withValue(cluster) {
                try await function()
            }
        }
    }
}

extension Trait where Self == ClusterScope {
    /// A private local Ray of `kind` for this suite.
    static func cluster(_ kind: TestCluster.Kind) -> Self { ClusterScope(kind: kind) }
}

enum CurrentCluster {
    @TaskLocal static var value: TestCluster?
}

/// The suite's cluster.
func requireCluster(sourceLocation: SourceLocation = #_sourceLocation) throws -> TestCluster {
    try #require(CurrentCluster.value, "the suite needs the .cluster(…) trait", sourceLocation: sourceLocation)
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. Not a timing assertion:
/// the timeout only bounds a wait for something that must happen.
func eventually(
    timeout: Duration = .seconds(180), every interval: Duration = .milliseconds(300),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Writes `files` (relative path → content) under a new temporary folder.
func makeDirectory(_ files: [String: String], emptyFolders: [String] = []) throws -> URL {
    let root = try TestEnvironment.makeTemporaryDirectory("raylan-dir")
    for (path, content) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(content.utf8).write(to: url)
    }
    for folder in emptyFolders {
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
    }
    return root
}
