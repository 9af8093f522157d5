import RayLANCore
import RayLANGateway
#if canImport(ImageIO)
    import CoreGraphics
    import Foundation
    import ImageIO

    extension DownscaledImage {
        /// Shrinks a JPEG with ImageIO: a thumbnail made from the full image (never an embedded EXIF thumbnail)
        /// whose longer side is `maxSide`, in the stored orientation (no EXIF transform, as the service reads
        /// images), encoded as a JPEG at quality 0.95 (ImageIO chooses the chroma subsampling) without the
        /// original's metadata. Nil — send the original — when the data is not a complete JPEG ImageIO can read
        /// (a truncated file: the service then names its error), the image is already no larger than `maxSide`,
        /// its pixels would pass ``maxDecodedBytes``, or ImageIO makes nothing.
        static func shrinkWithImageIO(_ jpeg: Data, maxSide: Int) -> Shrunk? {
            let sourceOptions = [kCGImageSourceShouldCache: false] as CFDictionary
            guard let source = CGImageSourceCreateWithData(jpeg as CFData, sourceOptions),
                CGImageSourceGetStatus(source) == .statusComplete,
                CGImageSourceGetCount(source) > 0,
                CGImageSourceGetStatusAtIndex(source, 0) == .statusComplete,
                let type = CGImageSourceGetType(source), (type as String) == "public.jpeg",
                let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any],
                let width = (properties[kCGImagePropertyPixelWidth] as? NSNumber)?.intValue,
                let height = (properties[kCGImagePropertyPixelHeight] as? NSNumber)?.intValue,
                width > 0, height > 0, width * height <= maxOriginalPixels,
                // CMYK goes as it is, as on Linux.
                (properties[kCGImagePropertyColorModel] as? String) != (kCGImagePropertyColorModelCMYK as String)
            else { return nil }
            let original = Size(width: width, height: height)
            guard original.longerSide > maxSide else { return nil }
            let shorter = (min(width, height) * maxSide + original.longerSide - 1) / original.longerSide
            guard maxSide * max(shorter, 1) * 4 <= maxDecodedBytes else { return nil }
            let thumbnailOptions =
                [
                    kCGImageSourceCreateThumbnailFromImageAlways: true,
                    kCGImageSourceThumbnailMaxPixelSize: maxSide,
                    kCGImageSourceCreateThumbnailWithTransform: false,
                    kCGImageSourceShouldCacheImmediately: true,
                ] as [CFString: Any] as CFDictionary
            guard let thumbnail = CGImageSourceCreateThumbnailAtIndex(source, 0, thumbnailOptions),
                thumbnail.width > 0, thumbnail.height > 0
            else { return nil }
            let output = NSMutableData()
            guard
                let destination = CGImageDestinationCreateWithData(
                    output as CFMutableData, "public.jpeg" as CFString, 1, nil)
            else { return nil }
            let encodeOptions =
                [kCGImageDestinationLossyCompressionQuality: Double(quality) / 100] as [CFString: Any] as CFDictionary
            CGImageDestinationAddImage(destination, thumbnail, encodeOptions)
            guard CGImageDestinationFinalize(destination), output.length > 0 else { return nil }
            return Shrunk(
                data: output as Data, original: original, sent: Size(width: thumbnail.width, height: thumbnail.height))
        }
    }
#endif
