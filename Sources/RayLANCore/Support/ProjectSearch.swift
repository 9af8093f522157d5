import Foundation

/// Finding RayLAN's own files (the `.venv`, the `cluster/` code) from where the running `raylan` is.
///
/// Only the executable's folder and the folders above it are searched, never the current folder: a folder
/// the user merely works in (a downloaded project, say) must not choose the Python that RayLAN runs or the
/// code it deploys.
package enum ProjectSearch {
    /// The folders to search from: the executable's (links resolved); none when its path is unknown.
    package static func startFolders(executablePath: String?) -> [String] {
        guard let executablePath, !executablePath.isEmpty else { return [] }
        let resolved = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().path
        return [(resolved as NSString).deletingLastPathComponent]
    }

    /// The first folder, walking up from each start in turn, for which `matches` holds.
    package static func findUpward(from starts: [String], where matches: (String) -> Bool) -> String? {
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

    /// Where the search looked, for an error message.
    package static func describe(_ starts: [String]) -> String {
        starts.isEmpty
            ? "nowhere: this program's path is unknown" : "\(starts.joined(separator: " and ")) and the folders above"
    }
}
