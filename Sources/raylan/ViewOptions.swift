import ArgumentParser
import Foundation
import RayLAN
import RayLANView

/// `--view` and `--open`: a run's local web view while it goes on (``RunView``).
struct ViewOptions: ParsableArguments {
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Show the results in a local web page while the run goes on (127.0.0.1, a random port and token); "
                + "it stays until Ctrl-C after the run."))
    var view = false
    @Flag(name: .long, help: "Open the view's page in the browser (implies --view).") var open = false

    /// Whether the run is viewed: `--view` or `--open`.
    var isOn: Bool { view || open }

    /// Runs `work` with `content` served when there is one (`--view` or `--open`): the URL on stderr, the page
    /// showing the run as it goes. When `work` returns, the page says the run ended and stays until Ctrl-C; when
    /// it throws, the view ends with it.
    func serving<Value: Sendable>(
        _ content: RunView.Content?, _ work: () async throws -> Value
    ) async throws -> Value {
        guard let content else { return try await work() }
        if case .gallery(let gallery) = content { await gallery.started(total: nil) }
        let open = self.open
        return try await RunView.serve(content) { url in
            Terminal.error("View: \(url.absoluteString)")
            if open { Self.openInBrowser(url) }
            let value = try await work()
            switch content {
            case .gallery(let gallery): await gallery.finish()
            case .live(let feed): feed.finish()
            }
            Terminal.error("The run ended; its view stays at \(url.absoluteString) until Ctrl-C.")
            await Interrupt.shared.untilPressed()
            return value
        }
    }

    /// Opens the page in the browser without waiting; a failure is said on stderr (the URL is printed above it).
    static func openInBrowser(_ url: URL) {
        Task {
            do { try await Browser.open(url) } catch { Terminal.error("Error: \(error)") }
        }
    }
}
