import Foundation
import RayLANCore

/// The Python environment whose `ray` command starts local clusters.
public struct RayEnvironment: Sendable, Hashable {
    /// The `ray` executable.
    public var rayExecutable: String
    /// The `python` next to it.
    public var python: String { (rayExecutable as NSString).deletingLastPathComponent + "/python" }

    public init(rayExecutable: String) {
        self.rayExecutable = rayExecutable
    }

    /// The command that creates the project's environment, for error messages.
    public static let setupCommand = "scripts/setup-python.sh"

    /// Finds the environment: `RAYLAN_PYTHON` (a python executable or a venv folder), else a `.venv` with
    /// `bin/ray` in the folder of `executablePath` (links resolved) or any folder above it — for
    /// `.build/debug/raylan`, the checkout's `.venv`. The current directory is never searched: a folder the
    /// user works in does not choose the Python that RayLAN runs.
    ///
    /// - Parameters:
    ///   - environment: where `RAYLAN_PYTHON` is read. Default: this process's environment.
    ///   - executablePath: the program whose checkout to search. Default: this process's executable.
    /// - Throws: ``LocalRayError`` (`pythonMissing`) saying where it looked and which command creates it.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executablePath: String? = Bundle.main.executablePath
    ) throws -> RayEnvironment {
        let fileManager = FileManager.default
        if let given = environment["RAYLAN_PYTHON"], !given.isEmpty {
            var isDirectory: ObjCBool = false
            let exists = fileManager.fileExists(atPath: given, isDirectory: &isDirectory)
            let bin = isDirectory.boolValue ? given + "/bin" : (given as NSString).deletingLastPathComponent
            let ray = bin + "/ray"
            if exists, fileManager.isExecutableFile(atPath: ray) { return RayEnvironment(rayExecutable: ray) }
            throw LocalRayError(
                .pythonMissing, "RAYLAN_PYTHON is '\(given)', but there is no Ray at \(ray)",
                remedy:
                    "Point RAYLAN_PYTHON at a Python (or venv) with ray[default,serve]==\(RayVersion.newestTested), or run \(setupCommand) in the RayLAN checkout."
            )
        }
        let starts = ProjectSearch.startFolders(executablePath: executablePath)
        if let folder = ProjectSearch.findUpward(
            from: starts, where: { fileManager.isExecutableFile(atPath: $0 + "/.venv/bin/ray") })
        {
            return RayEnvironment(rayExecutable: folder + "/.venv/bin/ray")
        }
        throw LocalRayError(
            .pythonMissing,
            "No Python environment with Ray found for the local cluster (looked for .venv/bin/ray in \(ProjectSearch.describe(starts)))",
            remedy:
                "Create it with '\(setupCommand)' in the RayLAN checkout, or set RAYLAN_PYTHON to a Python with ray[default,serve]==\(RayVersion.newestTested); or pass --address of a running cluster."
        )
    }
}

extension RayEnvironment {
    /// The Ray and Python versions of this environment, as Ray compares them between nodes.
    public struct Versions: Sendable, Hashable, Codable {
        public var ray: String
        public var python: String
    }

    /// Asks the environment's Python for its Ray and Python versions.
    ///
    /// - Throws: ``LocalRayError`` (`pythonMissing`) when Python or Ray cannot be run.
    public func versions() async throws -> Versions {
        let script = "import sys, ray; print('RAYLAN_VERSIONS', ray.__version__, sys.version.split()[0])"
        let result = try await ProcessGroup.capture([python, "-c", script], timeout: .seconds(60))
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("RAYLAN_VERSIONS ") }
        guard result.status == 0, let parts = line?.split(separator: " "), parts.count == 3 else {
            throw LocalRayError(
                .pythonMissing,
                "Cannot read the Ray version of \(python): \(result.output.split(separator: "\n").last ?? "no output")",
                remedy: "Point RAYLAN_PYTHON (or --python) at a Python environment with ray[default] installed.")
        }
        return Versions(ray: String(parts[1]), python: String(parts[2]))
    }

    /// Like ``locate(environment:executablePath:)``, then falls back to a `ray` on `PATH` (a GPU host where
    /// Ray is installed system-wide or in an active environment).
    public static func locateForNode(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executablePath: String? = Bundle.main.executablePath
    ) throws -> RayEnvironment {
        do {
            return try locate(environment: environment, executablePath: executablePath)
        } catch let error as LocalRayError
            where error.code == .pythonMissing && environment["RAYLAN_PYTHON"].map(\.isEmpty) ?? true
        {
            guard let ray = ProcessGroup.executable(named: "ray", path: environment["PATH"]) else { throw error }
            return RayEnvironment(rayExecutable: ray)
        }
    }
}
