import Foundation

/// RayLAN's cluster-side Python (the `cluster/` folder with `raylan_detect`), which deploys upload.
public struct ClusterCode: Sendable, Hashable {
    /// The `cluster/` folder.
    public var directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// The Serve proxy guard (`raylan_common/serve_guard.py`) that clusters RayLAN starts install
    /// (``LocalRayConfiguration/serveGuard``).
    public var serveGuard: String { directory.appendingPathComponent("raylan_common/serve_guard.py").path }

    /// `RAYLAN_CLUSTER_DIR`, else a `cluster/raylan_detect` in the folder of `executablePath` (links resolved)
    /// or any folder above it — for `.build/debug/raylan`, the checkout's `cluster/`. The current directory is
    /// never searched: a folder the user works in does not choose the code RayLAN deploys.
    ///
    /// - Parameters:
    ///   - environment: where `RAYLAN_CLUSTER_DIR` is read. Default: this process's environment.
    ///   - executablePath: the program whose checkout to search. Default: this process's executable.
    /// - Throws: ``ServeError`` (`clusterCodeMissing`) saying where it looked.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executablePath: String? = Bundle.main.executablePath
    ) throws -> ClusterCode {
        let fileManager = FileManager.default
        if let given = environment["RAYLAN_CLUSTER_DIR"], !given.isEmpty {
            guard fileManager.fileExists(atPath: given + "/raylan_detect/app.py") else {
                throw ServeError(
                    .clusterCodeMissing, "RAYLAN_CLUSTER_DIR is '\(given)', but it has no raylan_detect/app.py",
                    remedy: "Point it at the cluster/ folder of the RayLAN checkout.")
            }
            return ClusterCode(directory: URL(fileURLWithPath: given))
        }
        let starts = ProjectSearch.startFolders(executablePath: executablePath)
        if let folder = ProjectSearch.findUpward(
            from: starts, where: { fileManager.fileExists(atPath: $0 + "/cluster/raylan_detect/app.py") })
        {
            return ClusterCode(directory: URL(fileURLWithPath: folder + "/cluster"))
        }
        throw ServeError(
            .clusterCodeMissing,
            "RayLAN's cluster code (cluster/raylan_detect) was not found (looked in \(ProjectSearch.describe(starts)))",
            remedy: "Run the raylan built in the RayLAN checkout, or set RAYLAN_CLUSTER_DIR to its cluster/ folder.")
    }

    /// The Python packages a staged folder holds, where the `cluster/` folder has them.
    static let packages = ["raylan_common", "raylan_detect", "raylan_gateway", "raylan_bench", "raylan_doctor"]

    /// What ``stage(model:extra:)`` would copy, as each file's path, size and modification time: equal stamps
    /// stage equal folders. Reads metadata only, never the files.
    func stamp(model: String?) -> [String] {
        let fileManager = FileManager.default
        func stamp(_ path: String) -> String {
            let attributes = try? fileManager.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
            return "\(path)\t\(size)\t\(modified)"
        }
        var stamps: [String] = []
        for package in Self.packages {
            let source = directory.appendingPathComponent(package).path
            let names = (try? fileManager.contentsOfDirectory(atPath: source)) ?? []
            stamps += names.filter { $0.hasSuffix(".py") }.sorted().map { stamp(source + "/" + $0) }
        }
        if let model { stamps.append(stamp(model)) }
        return stamps
    }

    /// A folder holding what a working directory on the cluster needs: the Python packages (`raylan_common/`,
    /// `raylan_detect/`, `raylan_gateway/`,
    /// `raylan_bench/`), `models/<file>` when the model is a local file, and `extra` files at the given
    /// relative paths. The caller removes it.
    package func stage(model: String?, extra: [(source: URL, path: String)] = []) throws -> (
        folder: URL, modelArgument: String?
    ) {
        let fileManager = FileManager.default
        let folder = fileManager.temporaryDirectory.appendingPathComponent(
            "raylan-serve-\(UUID().uuidString.prefix(8))")
        try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        for package in Self.packages {
            let source = directory.appendingPathComponent(package)
            guard fileManager.fileExists(atPath: source.path) else { continue }
            let target = folder.appendingPathComponent(package)
            try fileManager.createDirectory(at: target, withIntermediateDirectories: true)
            for name in try fileManager.contentsOfDirectory(atPath: source.path) where name.hasSuffix(".py") {
                try fileManager.copyItem(
                    at: source.appendingPathComponent(name), to: target.appendingPathComponent(name))
            }
        }
        for (source, path) in extra {
            let target = folder.appendingPathComponent(path)
            try fileManager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fileManager.copyItem(at: source, to: target)
        }
        guard let model else { return (folder, nil) }
        let models = folder.appendingPathComponent("models")
        try fileManager.createDirectory(at: models, withIntermediateDirectories: true)
        let name = (model as NSString).lastPathComponent
        try fileManager.copyItem(at: URL(fileURLWithPath: model), to: models.appendingPathComponent(name))
        return (folder, "models/" + name)
    }
}
