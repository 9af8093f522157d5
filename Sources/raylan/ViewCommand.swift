import ArgumentParser
import Foundation
import RayLAN
import RayLANView

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Look at a run's detections in the browser: a gallery of its output folder, on this machine only.",
        discussion: """
            FOLDER: the --out folder of a 'raylan detect' run of images (detections.jsonl). The page shows every \
            input with its boxes drawn from the journal, filters by class and lowest score, and one image at a \
            time on a click; it follows the journal while a run still writes it. Pictures: for images sent from \
            this machine, the input files the journal names (relative paths from the current directory); for \
            --on-cluster runs, the annotated copies downloaded into the folder (--annotate), else the boxes on a \
            grey field of the image's size.

            The page is served on 127.0.0.1 only, on a port the system picks, behind a random token in its URL, \
            until Ctrl-C. It only reads.

            Exit codes: 0 stopped with Ctrl-C; 1 the page could not be served; \(ExitCodes.common)
            """)

    @Argument(help: ArgumentHelp("The run's output folder.", valueName: "folder")) var folder: String
    @Flag(name: .long, help: "Open the page in the browser.") var open = false

    func validate() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("No folder '\(folder)': give the --out folder of a 'raylan detect' run.")
        }
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("detections.jsonl"))
        else {
            throw ValidationError(
                "'\(folder)' has no detections.jsonl: give the --out folder of a 'raylan detect' run of images.")
        }
    }

    func run() async throws {
        let gallery = RunGallery(folder: URL(fileURLWithPath: folder))
        let open = self.open
        try await reportingErrors {
            try await RunView.serve(gallery) { url in
                Terminal.out(url.absoluteString)
                Terminal.error("Serving the view of \(folder) until Ctrl-C.")
                if open { ViewOptions.openInBrowser(url) }
                await Interrupt.shared.untilPressed()
            }
        }
    }
}
