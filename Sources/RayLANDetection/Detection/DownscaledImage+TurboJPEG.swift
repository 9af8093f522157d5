import RayLANCore
import RayLANGateway
#if !canImport(ImageIO) && canImport(CTurboJPEG)
    import CTurboJPEG
    import Foundation

    extension DownscaledImage {
        /// Shrinks a JPEG in the DCT domain with libjpeg-turbo: decodes it straight to the smallest of TurboJPEG's
        /// scale factors (n/8) that keeps its longer side at `maxSide` or more, and encodes that at ``quality``
        /// with full-resolution colour (4:4:4; a grey JPEG stays grey). Nil — send the original — when the header cannot be read, the image is
        /// already no larger than `maxSide` or no factor below 1 keeps it at `maxSide`, it is CMYK, the pixels
        /// would pass ``maxDecodedBytes``, or decoding or encoding reports anything, warnings included (a
        /// truncated file decodes with a warning: the service then names its error).
        static func shrinkWithTurboJPEG(_ jpeg: Data, maxSide: Int) -> Shrunk? {
            guard let decompressor = tjInitDecompress() else { return nil }
            defer { tjDestroy(decompressor) }
            return jpeg.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> Shrunk? in
                guard let source = buffer.bindMemory(to: UInt8.self).baseAddress else { return nil }
                var width: Int32 = 0
                var height: Int32 = 0
                var subsampling: Int32 = 0
                var colorspace: Int32 = 0
                guard
                    tjDecompressHeader3(
                        decompressor, source, UInt(buffer.count), &width, &height, &subsampling, &colorspace) == 0,
                    width > 0, height > 0,
                    colorspace != Int32(TJCS_CMYK.rawValue), colorspace != Int32(TJCS_YCCK.rawValue)
                else { return nil }
                let original = Size(width: Int(width), height: Int(height))
                guard original.width * original.height <= maxOriginalPixels,
                    let (sent, scale) = scaledSize(of: original, maxSide: maxSide)
                else { return nil }
                let isGrey = colorspace == Int32(TJCS_GRAY.rawValue)
                let format = isGrey ? Int32(TJPF_GRAY.rawValue) : Int32(TJPF_RGB.rawValue)
                let bytesPerPixel = isGrey ? 1 : 3
                let count = sent.width * sent.height * bytesPerPixel
                guard count <= maxDecodedBytes else { return nil }
                var pixels = [UInt8](repeating: 0, count: count)
                let decoded = pixels.withUnsafeMutableBufferPointer { target in
                    tjDecompress2(
                        decompressor, source, UInt(buffer.count), target.baseAddress, Int32(sent.width), 0,
                        Int32(sent.height), format, 0)
                }
                guard decoded == 0 else { return nil }
                guard
                    let data = encode(
                        pixels, size: sent, format: format,
                        subsampling: isGrey ? Int32(TJSAMP_GRAY.rawValue) : Int32(TJSAMP_444.rawValue))
                else { return nil }
                return Shrunk(data: data, original: original, sent: sent, exactScale: scale)
            }
        }

        /// The size TurboJPEG decodes `original` to at the smallest of its scale factors below 1 that keeps the
        /// longer side at `maxSide` or more, and original pixels per decoded pixel (the factor's inverse); nil when
        /// the longer side is already `maxSide` or less, or no such factor exists (1280 at 1200: 7/8 gives 1120).
        static func scaledSize(of original: Size, maxSide: Int) -> (size: Size, scale: Double)? {
            guard original.longerSide > maxSide else { return nil }
            var count: Int32 = 0
            guard let factors = tjGetScalingFactors(&count), count > 0 else { return nil }
            var best: (factor: Double, size: Size)?
            for factor in UnsafeBufferPointer(start: factors, count: Int(count))
            where factor.num > 0 && factor.num < factor.denom {
                // TJSCALED(dimension, factor): the dimension times the factor, rounded up.
                func scaled(_ dimension: Int) -> Int {
                    (dimension * Int(factor.num) + Int(factor.denom) - 1) / Int(factor.denom)
                }
                let size = Size(width: scaled(original.width), height: scaled(original.height))
                let value = Double(factor.num) / Double(factor.denom)
                if size.longerSide >= maxSide && value < (best?.factor ?? 1) { best = (value, size) }
            }
            return best.map { ($0.size, 1 / $0.factor) }
        }

        /// `pixels` (`format`, packed rows) as a JPEG at ``quality``; nil when TurboJPEG reports an error.
        static func encode(_ pixels: [UInt8], size: Size, format: Int32, subsampling: Int32) -> Data? {
            guard let compressor = tjInitCompress() else { return nil }
            defer { tjDestroy(compressor) }
            var output: UnsafeMutablePointer<UInt8>? = nil
            var outputSize: UInt = 0
            defer { if let output { tjFree(output) } }
            let status = pixels.withUnsafeBufferPointer { source in
                tjCompress2(
                    compressor, source.baseAddress, Int32(size.width), 0, Int32(size.height), format, &output,
                    &outputSize, subsampling, Int32(quality), 0)
            }
            guard status == 0, let output, outputSize > 0 else { return nil }
            return Data(bytes: output, count: Int(outputSize))
        }
    }
#endif
