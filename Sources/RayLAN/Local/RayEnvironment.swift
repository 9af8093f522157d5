import Foundation

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
    /// `bin/ray` in the folder of `executablePath` or any folder above it, else in the current directory
    /// or above.
    ///
    /// - Throws: ``ClusterError`` (`pythonMissing`) saying where it looked and which command creates it.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executablePath: String? = CommandLine.arguments.first
    ) throws -> RayEnvironment {
        let fileManager = FileManager.default
        if let given = environment["RAYLAN_PYTHON"], !given.isEmpty {
            var isDirectory: ObjCBool = false
            let exists = fileManager.fileExists(atPath: given, isDirectory: &isDirectory)
            let bin = isDirectory.boolValue ? given + "/bin" : (given as NSString).deletingLastPathComponent
            let ray = bin + "/ray"
            if exists, fileManager.isExecutableFile(atPath: ray) { return RayEnvironment(rayExecutable: ray) }
            throw ClusterError(
                .pythonMissing, "RAYLAN_PYTHON is '\(given)', but there is no Ray at \(ray)",
                remedy: "Point RAYLAN_PYTHON at a Python (or venv) with ray[default,serve]==\(RayVersion.newestTested), or run \(setupCommand) in the RayLAN checkout.")
        }
        let starts = ProjectSearch.startFolders(executablePath: executablePath)
        if let folder = ProjectSearch.findUpward(from: starts, where: { fileManager.isExecutableFile(atPath: $0 + "/.venv/bin/ray") }) {
            return RayEnvironment(rayExecutable: folder + "/.venv/bin/ray")
        }
        throw ClusterError(
            .pythonMissing,
            "No Python environment with Ray found for the local cluster (looked for .venv/bin/ray in \(starts.joined(separator: " and ")) and above)",
            remedy: "Create it with '\(setupCommand)' in the RayLAN checkout, or set RAYLAN_PYTHON to a Python with ray[default,serve]==\(RayVersion.newestTested); or pass --address of a running cluster.")
    }
}
