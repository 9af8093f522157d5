import Foundation
import RayLANCore
import RayLANGateway

/// How far a detect run shrinks each JPEG before sending it (``DetectionRun/maxSide``,
/// `raylan detect --max-side`).
///
/// The detector letterboxes every image to its input size (`imgsz`) anyway, so a JPEG sent at about that size
/// gives nearly the same boxes for a fraction of the bytes. The boxes come back in the original image's pixels
/// either way (see ``DownscaledImage``).
public enum MaxSide: Sendable, Hashable, CustomStringConvertible {
    /// The served model's input size (its `imgsz`, read from the service's `/models` once per run), e.g. 320
    /// for the shipped shapes model, 640 for a typical YOLO model.
    case auto
    /// Every file is sent as it is.
    case off
    /// JPEGs whose longer side passes this many pixels are shrunk to about it, never below. 1 or more.
    case pixels(Int)

    /// Parses `auto`, `off` (either in any case) or a whole number of pixels, 1 or more.
    /// - Throws: ``DetectionError`` `invalidMaxSide` (a usage error) for anything else, e.g. `0`, `-3`, `big`.
    public init(parsing text: String) throws {
        let value = text.trimmingCharacters(in: .whitespaces)
        switch value.lowercased() {
        case "auto": self = .auto
        case "off": self = .off
        default:
            guard let pixels = Int(value), pixels >= 1 else { throw Self.invalid(text) }
            self = .pixels(pixels)
        }
    }

    /// `auto`, `off` or the number of pixels, as ``init(parsing:)`` reads it.
    public var description: String {
        switch self {
        case .auto: "auto"
        case .off: "off"
        case .pixels(let pixels): String(pixels)
        }
    }

    static func invalid(_ text: String) -> DetectionError {
        DetectionError(
            .invalidMaxSide,
            "'\(text)' is not a maximum side: give a whole number of pixels of 1 or more (e.g. 640), 'auto' (the "
                + "served model's input size) or 'off' (send every file as it is)")
    }
}
