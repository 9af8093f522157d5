import Foundation
import RayLAN

/// Where the project's files and Python environments are, for tests.
public enum TestEnvironment {
    /// The package root (the folder with Package.swift), found from this file's path or `RAYLAN_ROOT`.
    public static let packageRoot: URL = {
        if let root = ProcessInfo.processInfo.environment["RAYLAN_ROOT"] { return URL(fileURLWithPath: root) }
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    /// A Ray version the tests run against, each from its own venv made by scripts/setup-python.sh.
    public enum Ray: String, Sendable, CaseIterable {
        /// `.venv`: ray[default,serve]==2.60.0, the project's pinned version.
        case current = ".venv"
        /// `.venv-ray245`: ray[default]==2.45.0, the seed's version.
        case ray245 = ".venv-ray245"
    }

    /// The Python environment for `ray`.
    public static func environment(_ ray: Ray) throws -> RayEnvironment {
        let path = packageRoot.appendingPathComponent(ray.rawValue).appendingPathComponent("bin/ray").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSetupError("No \(ray.rawValue) at \(packageRoot.path); run scripts/setup-python.sh first.")
        }
        return RayEnvironment(rayExecutable: path)
    }

    /// The built `raylan` executable: `RAYLAN_BIN`, else next to the test bundle, else `.build/debug/raylan`.
    public static var raylanExecutable: String {
        if let given = ProcessInfo.processInfo.environment["RAYLAN_BIN"] { return given }
        var candidates: [String] = []
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append((bundle.bundlePath as NSString).deletingLastPathComponent + "/raylan")
        }
        if let first = CommandLine.arguments.first {
            candidates.append((first as NSString).deletingLastPathComponent + "/raylan")
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/raylan").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }

    /// A new empty temporary folder.
    public static func makeTemporaryDirectory(_ prefix: String = "raylan-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The test environment is incomplete (e.g. a venv is missing).
public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
