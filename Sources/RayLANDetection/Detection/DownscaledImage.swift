import Foundation
import RayLANCore
import RayLANGateway

/// One image as the client sends it: a JPEG shrunk on this machine so that its longer side is about a maximum
/// side, or the original bytes, untouched.
///
/// The detector letterboxes every image to its input size (`imgsz`), so a 1280×720 photo sent to a 320 model
/// is mostly bytes the model never sees. Only a JPEG whose longer side passes `maxSide` is shrunk:
/// - on Linux in the DCT domain with libjpeg-turbo (decoding straight to the smaller size): the smallest of its
///   scale factors (n/8) that keeps the longer side at `maxSide` or more (1280×720 at 320 becomes 320×180,
///   1024×768 becomes 384×288), re-encoded at quality 95 with full-resolution colour (4:4:4; grey stays grey);
/// - on macOS with ImageIO: the longer side exactly `maxSide`, re-encoded at quality 0.95.
///
/// Why 95 and 4:4:4: at the model's input size an object is a few dozen pixels, and halving its colour resolution
/// (4:2:0) is what changed the shipped model's answers. On 40 1280×720 images at 320, the share of the
/// original's boxes that came back (IoU ≥ 0.9, same class) was 96% at quality 90, 4:2:0, 98.5% at 90, 4:4:4 and
/// 100% at 95, 4:4:4 — about twice the bytes of 90, 4:2:0 (a 1280×720 sample: 120 KB → 18 KB instead of 8 KB).
///
/// Everything else is the original bytes, byte for byte: other formats, a JPEG already no larger than
/// `maxSide`, one that does not decode cleanly (a truncated file: the service then names its error), a CMYK
/// JPEG, one so large that its shrunk pixels would pass 64 MiB, and a shrink that would not save bytes. No input
/// is ever lost to the shrink.
///
/// The pixels keep the file's stored orientation (EXIF orientation is not applied, and not kept), which is how
/// the service reads every image. Map the service's answer back with ``DetectionResult/mapped(toOriginalOf:)``:
/// ```swift
/// let image = DownscaledImage.make(try Data(contentsOf: photo), maxSide: 640)
/// let result = try await client.detect(image.data).mapped(toOriginalOf: image)  // boxes in the photo's pixels
/// ```
public struct DownscaledImage: Sendable, Hashable {
    /// A size in pixels.
    public struct Size: Sendable, Hashable, Codable, CustomStringConvertible {
        public var width: Int
        public var height: Int

        public init(width: Int, height: Int) {
            self.width = width
            self.height = height
        }

        /// The longer side.
        public var longerSide: Int { max(width, height) }

        public var description: String { "\(width)×\(height)" }
    }

    /// The bytes to send: the shrunk JPEG, or the original bytes.
    public var data: Data
    /// The original's size in bytes (``data`` holds `data.count`).
    public var originalBytes: Int
    /// The original image's size in pixels when it was shrunk; nil when ``data`` is the original.
    public var originalSize: Size?
    /// The shrunk image's size in pixels; nil when ``data`` is the original.
    public var sentSize: Size?

    /// Original pixels per sent pixel on both axes when the shrink knows it exactly (libjpeg-turbo's n/8
    /// factors: 8/n, though the sent size is rounded up); nil: the sizes' ratio (ImageIO, or not shrunk).
    public var exactScale: Double?

    /// Whether ``data`` is a shrunk copy rather than the original bytes.
    public var isDownscaled: Bool { originalSize != nil }

    /// Original pixels per sent pixel across (e.g. 4 for 1280 → 320; ``exactScale`` when known); 1 when not shrunk.
    public var scaleX: Double {
        guard let originalSize, let sentSize, sentSize.width > 0 else { return 1 }
        return exactScale ?? Double(originalSize.width) / Double(sentSize.width)
    }

    /// Original pixels per sent pixel down (``exactScale`` when known); 1 when not shrunk.
    public var scaleY: Double {
        guard let originalSize, let sentSize, sentSize.height > 0 else { return 1 }
        return exactScale ?? Double(originalSize.height) / Double(sentSize.height)
    }

    /// Whether this build can shrink JPEGs (ImageIO on macOS, libjpeg-turbo on Linux); when not, ``make(_:maxSide:)``
    /// always returns the original bytes.
    public static var isAvailable: Bool {
        #if canImport(ImageIO) || canImport(CTurboJPEG)
            true
        #else
            false
        #endif
    }

    /// The quality shrunk JPEGs are encoded at, 1–100.
    static let quality = 95
    /// The most memory a shrink may decode into; a larger result is not made (the original is sent).
    static let maxDecodedBytes = 64 << 20
    /// The largest original a shrink reads, in pixels (the service's default limit): a progressive JPEG holds
    /// its whole image's coefficients while it decodes, whatever the scale; a larger one goes as it is, and
    /// the service names it `too_large`.
    static let maxOriginalPixels = 50_000_000

    /// `image` as it should be sent with a maximum side of `maxSide` pixels (nil: as it is). Never fails: anything
    /// that cannot or need not be shrunk is returned as it is (see the type's discussion). The original bytes are
    /// not kept in the returned value when the image was shrunk.
    /// - Parameters:
    ///   - image: the encoded image (any format; only a JPEG is shrunk).
    ///   - maxSide: the longer side to shrink to, at least (a JPEG already no larger is sent as it is); nil or
    ///     less than 1: no shrink.
    public static func make(_ image: Data, maxSide: Int?) -> DownscaledImage {
        let original = DownscaledImage(data: image, originalBytes: image.count)
        guard let maxSide, maxSide >= 1, isJPEG(image), isComplete(image),
            let shrunk = shrink(image, maxSide: maxSide),
            shrunk.data.count < image.count, shrunk.sent.width > 0, shrunk.sent.height > 0
        else { return original }
        return DownscaledImage(
            data: shrunk.data, originalBytes: image.count, originalSize: shrunk.original, sentSize: shrunk.sent,
            exactScale: shrunk.exactScale)
    }

    /// A JPEG that ends with its EOI marker: a truncated file goes as it is on every platform (decoders may fill
    /// in what is missing), so that the service names it `decode_failed`.
    static func isComplete(_ jpeg: Data) -> Bool {
        jpeg.count >= 4 && jpeg[jpeg.endIndex - 2] == 0xFF && jpeg[jpeg.endIndex - 1] == 0xD9
    }

    /// A JPEG starts with SOI and another marker.
    package static func isJPEG(_ data: Data) -> Bool {
        data.starts(with: [0xFF, 0xD8, 0xFF])
    }

    /// What a platform's shrink made.
    struct Shrunk {
        var data: Data
        var original: Size
        var sent: Size
        var exactScale: Double? = nil
    }

    /// The platform's shrink of a JPEG; nil when it cannot or need not shrink it.
    static func shrink(_ jpeg: Data, maxSide: Int) -> Shrunk? {
        #if canImport(ImageIO)
            shrinkWithImageIO(jpeg, maxSide: maxSide)
        #elseif canImport(CTurboJPEG)
            shrinkWithTurboJPEG(jpeg, maxSide: maxSide)
        #else
            nil
        #endif
    }
}
