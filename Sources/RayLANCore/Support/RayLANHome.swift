import Foundation

/// Where RayLAN keeps its state on this machine (the embedded cluster, the node `raylan up` started, the
/// cluster token): `$RAYLAN_HOME`, else `~/.raylan`.
public enum RayLANHome {
    public static func path(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["RAYLAN_HOME"], !home.isEmpty { return home }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.raylan"
    }

    /// Makes `folder` (RayLAN's home or a folder in it) with mode 0700, and any missing folder above it the
    /// same way, so that what RayLAN keeps (tokens, records, uploads) is readable by this user only; an existing
    /// `folder` with a wider mode is narrowed to its owner's bits.
    public static func makePrivateFolder(_ folder: String) throws {
        let fileManager = FileManager.default
        var missing: [String] = []
        var path = (folder as NSString).standardizingPath
        while !path.isEmpty && path != "/" && !fileManager.fileExists(atPath: path) {
            missing.append(path)
            path = (path as NSString).deletingLastPathComponent
        }
        for path in missing.reversed() {
            do {
                try fileManager.createDirectory(
                    atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            } catch {
                // Made meanwhile by another process or task: fine, as long as it is a folder.
                var isFolder: ObjCBool = false
                guard fileManager.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
                    throw error
                }
            }
        }
        if let mode = try? fileManager.attributesOfItem(atPath: folder)[.posixPermissions] as? Int, mode & 0o077 != 0 {
            try? fileManager.setAttributes([.posixPermissions: mode & 0o700], ofItemAtPath: folder)
        }
    }
}
