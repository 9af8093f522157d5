import ArgumentParser
import Foundation
import RayLAN
import RayLANView

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Look at a run's detections in the browser: a gallery of its output folder, on this machine only.",
        discussion: """
            FOLDER: the --out folder of a 'raylan detect' run (detections.jsonl, or one per source in its \
            sub-folders). For images the page shows every input with its boxes drawn from the journal, filters by \
            class and lowest score, and one image at a time on a click; it follows the journal while a run still \
            writes it. For videos and streams it shows each source's per-class counts over time and its frames \
            (a finished run keeps no pictures but its annotated.mp4; 'raylan detect … --view' shows them live). Pictures: for images sent from \
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
        guard !journals.isEmpty else {
            throw ValidationError(
                "'\(folder)' has no detections.jsonl (nor its sub-folders): give the --out folder of a "
                    + "'raylan detect' run.")
        }
    }

    /// The folder's journal, else its sub-folders' (a run of several videos has one per source), by source name.
    var journals: [(source: String, journal: URL)] {
        let root = URL(fileURLWithPath: folder)
        let own = root.appendingPathComponent(DetectionJournal.name)
        if FileManager.default.fileExists(atPath: own.path) { return [(root.lastPathComponent, own)] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.sorted().compactMap { name in
            let journal = root.appendingPathComponent(name).appendingPathComponent(DetectionJournal.name)
            return FileManager.default.fileExists(atPath: journal.path) ? (name, journal) : nil
        }
    }

    func run() async throws {
        let open = self.open
        let journals = self.journals
        try await reportingErrors {
            let content: RunView.Content =
                try RunGallery.isVideoJournal(journals[0].journal)
                ? .live(try LiveFeed.finished(journals))
                : .gallery(RunGallery(folder: journals[0].journal.deletingLastPathComponent()))
            try await RunView.serve(content) { url in
                Terminal.out(url.absoluteString)
                Terminal.error("Serving the view of \(folder) until Ctrl-C.")
                if open { ViewOptions.openInBrowser(url) }
                await Interrupt.shared.untilPressed()
            }
        }
    }
}
