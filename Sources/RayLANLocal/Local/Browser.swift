import Foundation
import RayLANCore

/// The user's web browser.
public enum Browser {
    /// Opens `url` in the browser: `open` on macOS, `xdg-open` elsewhere. Returns once the opener ends (it
    /// hands the URL to the browser and exits); the browser is not this process's to stop.
    /// - Throws: ``LocalRayError`` `spawnFailed` when the opener cannot run or fails.
    public static func open(_ url: URL) async throws {
        #if os(macOS)
            let opener = "/usr/bin/open"
        #else
            let opener = "xdg-open"
        #endif
        let result = try await ProcessGroup.capture([opener, url.absoluteString], timeout: .seconds(3600))
        guard result.status == 0 else {
            throw LocalRayError(
                .spawnFailed, "'\(opener)' could not open the page (exit \(result.status.map(String.init) ?? "?"))",
                remedy: "Open the URL that raylan printed in a browser yourself.")
        }
    }
}
