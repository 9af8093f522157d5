import Foundation

/// Where RayLAN keeps its state on this machine (the embedded cluster, the node `raylan up` started, the
/// cluster token): `$RAYLAN_HOME`, else `~/.raylan`.
public enum RayLANHome {
    public static func path(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["RAYLAN_HOME"], !home.isEmpty { return home }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.raylan"
    }
}
