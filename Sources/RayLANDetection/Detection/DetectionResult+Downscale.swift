import Foundation
import RayLANCore
import RayLANGateway

extension DetectionResult {
    /// This answer for `image` as sent, as if the original had been sent: every box multiplied, per axis, by the
    /// original's size over the size the service decoded (``image``; libjpeg-turbo's exact factor,
    /// ``DownscaledImage/exactScale``, when that is the size sent), rounded to 0.01 px and clamped to the
    /// original; ``image`` set to the original's width and height (its format stays); ``sent`` recording the
    /// shrunk image and both byte counts. The answer itself when `image` was not shrunk, or when the service
    /// reports no size. The annotated image, if any, stays at the size sent.
    public func mapped(toOriginalOf image: DownscaledImage) -> DetectionResult {
        guard let original = image.originalSize, self.image.width > 0, self.image.height > 0 else { return self }
        // libjpeg-turbo's n/8 decode maps pixels by exactly 8/n, though its size is rounded up.
        let exact = self.image.width == image.sentSize?.width && self.image.height == image.sentSize?.height
        let scaleX = exact ? image.exactScale ?? image.scaleX : Double(original.width) / Double(self.image.width)
        let scaleY = exact ? image.exactScale ?? image.scaleY : Double(original.height) / Double(self.image.height)
        func map(_ value: Double, _ scale: Double, _ limit: Int) -> Double {
            min(max((value * scale * 100).rounded() / 100, 0), Double(limit))
        }
        var result = self
        result.detections = detections.map { detection in
            var detection = detection
            if detection.box.count == 4 {
                let box = detection.box
                detection.box = [
                    map(box[0], scaleX, original.width), map(box[1], scaleY, original.height),
                    map(box[2], scaleX, original.width), map(box[3], scaleY, original.height),
                ]
            }
            return detection
        }
        result.sent = Sent(
            width: self.image.width, height: self.image.height, bytes: image.data.count,
            originalBytes: image.originalBytes)
        result.image.width = original.width
        result.image.height = original.height
        return result
    }
}
