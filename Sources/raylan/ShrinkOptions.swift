import ArgumentParser
import RayLAN

/// `--max-side`, which `detect` and `bench` share: how far the client shrinks each JPEG before sending it.
struct ShrinkOptions: ParsableArguments {
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Shrink each JPEG here before sending it, to a longer side of about N pixels (never below; the model "
                + "letterboxes to its input size anyway): N, auto (the served model's input size, e.g. 320 for the "
                + "shipped model, 640 for a typical YOLO) or off. Boxes and image sizes in the results are the "
                + "original file's. Other formats and smaller JPEGs are sent as they are. Default auto.",
            valueName: "n|auto|off"))
    var maxSide: String?

    func validate() throws {
        guard let maxSide else { return }
        do {
            _ = try MaxSide(parsing: maxSide)
        } catch let error as DetectionError {
            throw ValidationError("--max-side: \(error.message).")
        }
    }

    /// The parsed value (``validate()`` has checked it).
    var value: MaxSide { maxSide.flatMap { try? MaxSide(parsing: $0) } ?? .auto }
}
