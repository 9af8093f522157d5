import Foundation

/// Finding RayLAN's own files (the `.venv`, the `cluster/` code) from where `raylan` runs.
enum ProjectSearch {
    /// The folders to search from: the executable's (links resolved), then the current one.
    static func startFolders(executablePath: String?) -> [String] {
        var starts: [String] = []
        if let executablePath {
            let resolved = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().path
            starts.append((resolved as NSString).deletingLastPathComponent)
        }
        starts.append(FileManager.default.currentDirectoryPath)
        return starts
    }

    /// The first folder, walking up from each start in turn, for which `matches` holds.
    static func findUpward(from starts: [String], where matches: (String) -> Bool) -> String? {
        for start in starts {
            var folder = start
            while true {
                if matches(folder) { return folder }
                let parent = (folder as NSString).deletingLastPathComponent
                if parent == folder || parent.isEmpty { break }
                folder = parent
            }
        }
        return nil
    }
}
