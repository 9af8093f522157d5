import Foundation
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// The client-side shrink of JPEGs (`--max-side`), the mapping of boxes back and the agreement measure, without a
/// cluster.
@Suite("Client-side downscale")
struct DownscaleTests {
    static let samples = TestEnvironment.packageRoot.appendingPathComponent("samples")

    /// Every sample with its size, from samples/ground_truth.json (not from the library).
    static let sampleSizes: [(name: String, width: Int, height: Int)] = {
        struct Truth: Decodable {
            struct Image: Decodable { var width: Int; var height: Int }
            var images: [String: Image]
        }
        guard let data = FileManager.default.contents(atPath: samples.appendingPathComponent("ground_truth.json").path),
            let truth = try? JSONDecoder().decode(Truth.self, from: data)
        else { return [] }
        return truth.images.map { ($0.key, $0.value.width, $0.value.height) }.sorted { $0.name < $1.name }
    }()

    static func sample(_ name: String) throws -> Data {
        try Data(contentsOf: samples.appendingPathComponent(name))
    }

    /// The width, height and number of colour components (1 grey, 3 YCbCr, 4 CMYK or YCCK) in a JPEG's frame
    /// header (SOFn), found by walking its markers from SOI; nil when the bytes are not a JPEG that starts with
    /// SOI, has a frame header and ends with EOI. Independent of the library's codecs.
    static func jpegFrame(_ data: Data) -> (width: Int, height: Int, components: Int)? {
        let bytes = [UInt8](data)
        guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes.suffix(2) == [0xFF, 0xD9] else { return nil }
        var index = 2
        while index + 9 < bytes.count {
            guard bytes[index] == 0xFF else { return nil }
            let marker = bytes[index + 1]
            if marker == 0xFF {
                index += 1
                continue
            }
            let length = Int(bytes[index + 2]) << 8 | Int(bytes[index + 3])
            if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) {
                let height = Int(bytes[index + 5]) << 8 | Int(bytes[index + 6])
                let width = Int(bytes[index + 7]) << 8 | Int(bytes[index + 8])
                return (width, height, Int(bytes[index + 9]))
            }
            index += 2 + length
        }
        return nil
    }

    /// The width and height in a JPEG's frame header (see ``jpegFrame(_:)``).
    static func jpegSize(_ data: Data) -> (width: Int, height: Int)? {
        jpegFrame(data).map { ($0.width, $0.height) }
    }

    /// A real grey PNG of `width`×`height` (zlib stored blocks, CRC-32 and Adler-32 written here).
    static func makePNG(width: Int, height: Int) -> Data {
        func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        func crc32(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return bigEndian(UInt32(body.count)) + typed + bigEndian(crc32(typed))
        }
        var raw: [UInt8] = []
        for row in 0..<height {
            raw.append(0)  // filter: none
            for column in 0..<width { raw.append(UInt8((row / 8 + column / 8) % 2 == 0 ? 40 : 200)) }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let count = min(65535, raw.count - offset)
            let isLast: UInt8 = offset + count == raw.count ? 1 : 0
            zlib += [isLast, UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            zlib += raw[offset..<offset + count]
            offset += count
        } while offset < raw.count
        var (a, b): (UInt32, UInt32) = (1, 0)
        for byte in raw {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        zlib += bigEndian(b << 16 | a)
        let header = bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 0, 0, 0, 0]  // 8-bit grey
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlib))
            + Data(chunk("IEND", []))
    }

    @Test("This build can shrink JPEGs (libjpeg-turbo on Linux, ImageIO on macOS)")
    func available() {
        #expect(DownscaledImage.isAvailable)
    }

    @Test("A 1280×720 sample at 320 becomes a valid 320×180 JPEG of far fewer bytes")
    func shrinksLargeJPEG() throws {
        let original = try Self.sample("shapes_01.jpg")
        try #require(Self.jpegSize(original)! == (1280, 720))
        let image = DownscaledImage.make(original, maxSide: 320)
        #expect(image.isDownscaled)
        let size = try #require(Self.jpegSize(image.data), "not a complete JPEG")
        // 1/4 is both TurboJPEG's smallest factor that keeps 320 and ImageIO's exact fit.
        #expect(size == (320, 180))
        #expect(image.sentSize == DownscaledImage.Size(width: size.width, height: size.height))
        #expect(image.originalSize == DownscaledImage.Size(width: 1280, height: 720))
        #expect(image.originalBytes == original.count)
        #expect(image.scaleX == 4 && image.scaleY == 4)
        #if !canImport(ImageIO)
            #expect(image.exactScale == 4)  // libjpeg-turbo's 1/4
        #endif
        #expect(image.data.count * 5 < original.count, "\(image.data.count) of \(original.count) bytes")
        // What is sent is a JPEG the library itself reads back (shrinking it further works).
        #expect(DownscaledImage.make(image.data, maxSide: 160).sentSize == DownscaledImage.Size(width: 160, height: 90))
    }

    @Test(
        "Every sample: shrunk to a longer side of N or more (and less than the original) when larger than N, else byte-identical",
        arguments: [320, 640])
    func everySample(maxSide: Int) throws {
        try #require(Self.sampleSizes.count == 12)
        for sample in Self.sampleSizes {
            let original = try Self.sample(sample.name)
            let image = DownscaledImage.make(original, maxSide: maxSide)
            let longer = max(sample.width, sample.height)
            guard longer > maxSide else {
                #expect(image.data == original && !image.isDownscaled, "\(sample.name)")
                continue
            }
            #expect(image.isDownscaled, "\(sample.name) at \(maxSide)")
            let size = try #require(Self.jpegSize(image.data), "\(sample.name): not a complete JPEG")
            #expect(max(size.width, size.height) >= maxSide, "\(sample.name): \(size)")
            #expect(max(size.width, size.height) < longer, "\(sample.name): \(size)")
            #expect(image.data.count < original.count)
            // The aspect ratio stays within a pixel's rounding.
            #expect(
                abs(size.width * sample.height - size.height * sample.width) <= longer,
                "\(sample.name): \(size) from \(sample.width)×\(sample.height)")
            #if !canImport(ImageIO)
                // TurboJPEG scales by eighths: the smallest that keeps N is less than an eighth above it.
                #expect(max(size.width, size.height) < maxSide + (longer + 7) / 8, "\(sample.name): \(size)")
            #endif
        }
    }

    @Test("PNGs, JPEGs no larger than N, truncated JPEGs and no max side are sent byte for byte")
    func unchanged() throws {
        let png = Self.makePNG(width: 800, height: 400)
        #expect(DownscaledImage.make(png, maxSide: 320).data == png)
        #expect(!DownscaledImage.make(png, maxSide: 320).isDownscaled)

        let small = try Self.sample("shapes_00.jpg")  // 640×480
        #expect(DownscaledImage.make(small, maxSide: 640).data == small)
        #expect(DownscaledImage.make(small, maxSide: 1000).data == small)
        let large = try Self.sample("shapes_07.jpg")  // 1280×720
        #expect(DownscaledImage.make(large, maxSide: 1280).data == large)
        #if !canImport(ImageIO)
            // No eighth below 1 keeps 1200 (7/8 gives 1120): sent as it is rather than below N.
            #expect(DownscaledImage.make(large, maxSide: 1200).data == large)
        #endif

        // A truncated JPEG is not shrunk into a valid one: the service must see it and name its error.
        let truncated = large.prefix(large.count / 3)
        #expect(DownscaledImage.make(truncated, maxSide: 320).data == truncated)
        let text = Data("not an image at all".utf8)
        #expect(DownscaledImage.make(text, maxSide: 320).data == text)

        for sample in Self.sampleSizes {
            let data = try Self.sample(sample.name)
            let unchanged = DownscaledImage.make(data, maxSide: nil)
            #expect(unchanged.data == data && !unchanged.isDownscaled && unchanged.scaleX == 1)
            #expect(DownscaledImage.make(data, maxSide: 0).data == data)
        }
    }

    @Test(
        "Guards: a CMYK JPEG, an original over 50 MP and a shrink that saves no bytes go as they are; a grey one stays grey"
    )
    func guards() async throws {
        // The images are made by PIL (not by the library's codecs), in a folder removed afterwards.
        let folder = try TestEnvironment.makeTemporaryDirectory("raylan-downscale-guards")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = """
            import sys, numpy as np
            from PIL import Image
            out = sys.argv[1]
            Image.new("CMYK", (1280, 720), (10, 200, 30, 0)).save(f"{out}/cmyk.jpg", quality=90)
            Image.fromarray((np.indices((720, 1280)).sum(0) % 256).astype("uint8"), "L").save(f"{out}/grey.jpg", quality=90)
            Image.new("L", (8000, 6400), 128).save(f"{out}/over.jpg", quality=50)
            Image.new("L", (7000, 7000), 128).save(f"{out}/under.jpg", quality=50)
            noise = (np.random.default_rng(1).random((720, 1280, 3)) * 255).astype("uint8")
            Image.fromarray(noise, "RGB").resize((2560, 1440), Image.NEAREST).save(f"{out}/noise.jpg", quality=3)
            """
        let made = try await CommandRunner.run(
            try TestEnvironment.environment(.current).python, ["-c", script, folder.path])
        try #require(made.status == 0, "\(made)")
        func image(_ name: String) throws -> Data { try Data(contentsOf: folder.appendingPathComponent(name)) }

        // Each comparison is made first and its Bool expected: a failing `Data == Data` inside #expect would
        // have the test library diff the bytes, which takes minutes for these sizes.
        func sentAsItIs(_ original: Data, maxSide: Int) -> Bool {
            let image = DownscaledImage.make(original, maxSide: maxSide)
            return image.data == original && !image.isDownscaled
        }

        let cmyk = try image("cmyk.jpg")
        try #require(Self.jpegFrame(cmyk)?.components == 4, "not a CMYK JPEG")
        #expect(sentAsItIs(cmyk, maxSide: 320), "a CMYK JPEG was shrunk")

        let grey = try image("grey.jpg")
        try #require(Self.jpegFrame(grey)?.components == 1, "not a grey JPEG")
        let greyShrunk = DownscaledImage.make(grey, maxSide: 320)
        #expect(greyShrunk.isDownscaled && greyShrunk.data.count < grey.count)
        #if !canImport(ImageIO)
            #expect(Self.jpegFrame(greyShrunk.data)?.components == 1, "a grey JPEG was sent with colour")
        #endif
        #expect(Self.jpegSize(greyShrunk.data).map { [$0.width, $0.height] } == [320, 180])

        // 51.2 MP goes as it is (the service names it too_large); the same kind of image at 49 MP is shrunk.
        let over = try image("over.jpg")
        try #require(Self.jpegSize(over).map { $0.width * $0.height } == 51_200_000)
        #expect(sentAsItIs(over, maxSide: 320), "an original over 50 MP was shrunk")
        let under = try image("under.jpg")
        #expect(DownscaledImage.make(under, maxSide: 320).isDownscaled)

        // Noise saved at quality 3: halved and saved at quality 95 it would be larger, so the original goes.
        let noise = try image("noise.jpg")
        let wouldBe = try #require(DownscaledImage.shrink(noise, maxSide: 1280), "the noise did not shrink at all")
        try #require(
            wouldBe.data.count >= noise.count, "the shrink saves bytes: \(wouldBe.data.count) of \(noise.count)")
        #expect(sentAsItIs(noise, maxSide: 1280), "a shrink that saves nothing was sent")
    }

    @Test(
        "--max-side values: auto, off and whole numbers of 1 or more",
        arguments: [
            ("auto", MaxSide.auto), ("AUTO", .auto), ("off", .off), (" Off ", .off), ("320", .pixels(320)),
            ("1", .pixels(1)), ("4096", .pixels(4096)),
        ])
    func parses(_ pair: (String, MaxSide)) throws {
        #expect(try MaxSide(parsing: pair.0) == pair.1)
        #expect(try MaxSide(parsing: pair.1.description) == pair.1)
    }

    @Test(
        "Bad --max-side values are usage errors that say what to give",
        arguments: ["0", "-3", "big", "", "3.5", "320px"])
    func rejects(_ text: String) throws {
        let error = try #require(throws: DetectionError.self) { try MaxSide(parsing: text) }
        #expect(error.code == .invalidMaxSide && error.isUsageError)
        #expect(error.message.contains("'\(text)'") && error.message.contains("auto") && error.message.contains("off"))
    }

    @Test("raylan detect --max-side 0 | -3 | big exits 64 naming the option, before connecting")
    func cliRejects() async throws {
        for value in ["0", "-3", "big"] {
            let result = try await CommandRunner.raylan([
                "detect", Self.samples.path, "--max-side", value, "--address", "127.0.0.1:9",
            ])
            #expect(result.status == 64, "\(value): \(result)")
            #expect(result.stderr.contains("--max-side") && result.stderr.contains("'\(value)'"), "\(result.stderr)")
        }
        let help = try await CommandRunner.raylan(["detect", "--help"])
        #expect(help.stdout.contains("--max-side") && help.stdout.contains("default: auto"), "\(help.stdout)")
    }

    /// A service answer for an image of `width`×`height` (as the service decoded it).
    static func answer(width: Int, height: Int, boxes: [[Double]]) -> DetectionResult {
        DetectionResult(
            model: "m", image: .init(width: width, height: height, format: "jpeg"),
            detections: boxes.enumerated().map { Detection(box: $1, score: 0.9, classID: $0, className: "c\($0)") },
            batchSize: 1, timingsMs: [:])
    }

    /// A shrunk image as `make` describes one, of `original` sent at `sent`.
    static func shrunk(_ original: (Int, Int), _ sent: (Int, Int), bytes: Int = 10, of originalBytes: Int = 100)
        -> DownscaledImage
    {
        DownscaledImage(
            data: Data(count: bytes), originalBytes: originalBytes,
            originalSize: .init(width: original.0, height: original.1), sentSize: .init(width: sent.0, height: sent.1))
    }

    @Test("Boxes map back to the original's pixels per axis and are clamped to it; the size is the original's")
    func mapsBack() {
        // 1280×720 sent as 320×180: ×4 on both axes.
        let even = Self.answer(width: 320, height: 180, boxes: [[10, 20, 110.5, 179.99], [0, 0, 320, 180]])
            .mapped(toOriginalOf: Self.shrunk((1280, 720), (320, 180), bytes: 12_000, of: 90_000))
        #expect(even.detections.map(\.box) == [[40, 80, 442, 719.96], [0, 0, 1280, 720]])
        #expect(even.image.width == 1280 && even.image.height == 720 && even.image.format == "jpeg")
        #expect(even.sent == DetectionResult.Sent(width: 320, height: 180, bytes: 12_000, originalBytes: 90_000))
        #expect(even.detections.map(\.classID) == [0, 1] && even.detections.allSatisfy { $0.score == 0.9 })

        // 1001×751 sent as 126×94 (eighths round up): x × 1001/126, y × 751/94, each axis its own.
        let uneven = Self.answer(width: 126, height: 94, boxes: [[63, 47, 126, 94], [12.6, 9.4, 25.2, 18.8]])
            .mapped(toOriginalOf: Self.shrunk((1001, 751), (126, 94)))
        #expect(uneven.detections[0].box == [500.5, 375.5, 1001, 751])
        #expect(uneven.detections[1].box == [100.1, 75.1, 200.2, 150.2])

        // The same with libjpeg-turbo's exact factor (1/8: 8 original pixels per sent pixel, though 1001/8 was
        // rounded up to 126): x and y × 8, clamped to the original.
        var exact = Self.shrunk((1001, 751), (126, 94))
        exact.exactScale = 8
        let exactly = Self.answer(width: 126, height: 94, boxes: [[63, 47, 126, 94], [12.6, 9.4, 25.2, 18.8]])
            .mapped(toOriginalOf: exact)
        #expect(exactly.detections[0].box == [504, 376, 1001, 751])
        #expect(exactly.detections[1].box == [100.8, 75.2, 201.6, 150.4])

        // Beyond the sent image (rounding, a box over the edge) stays within the original.
        let over = Self.answer(width: 320, height: 180, boxes: [[-0.4, -1, 320.3, 181]])
            .mapped(toOriginalOf: Self.shrunk((1280, 720), (320, 180)))
        #expect(over.detections[0].box == [0, 0, 1280, 720])

        // Not shrunk: the answer as it came, with no record of a shrink.
        let plain = Self.answer(width: 640, height: 480, boxes: [[1, 2, 3, 4]])
        let kept = plain.mapped(toOriginalOf: DownscaledImage.make(Data("x".utf8), maxSide: 320))
        #expect(kept == plain && kept.sent == nil)
    }

    @Test("A shrunk result's record in the journal keeps what was sent, and older lines without it still read")
    func journalLine() throws {
        let result = Self.answer(width: 320, height: 180, boxes: [[10, 20, 30, 40]])
            .mapped(toOriginalOf: Self.shrunk((1280, 720), (320, 180), bytes: 7, of: 70))
        let line = try DetectionJournal.makeEncoder().encode(DetectionRecord(path: "a.jpg", result: result))
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.contains(#""sent":{"bytes":7,"height":180,"original_bytes":70,"width":320}"#), "\(text)")
        #expect(try JSONDecoder().decode(DetectionRecord.self, from: line).result == result)
        let old =
            #"{"path":"b.jpg","result":{"model":"m","image":{"width":4,"height":3,"format":"png"},"#
            + #""detections":[],"batch_size":1,"timings_ms":{}}}"#
        #expect(try JSONDecoder().decode(DetectionRecord.self, from: Data(old.utf8)).result?.sent == nil)
    }

    static func detection(_ box: [Double], _ classID: Int) -> Detection {
        Detection(box: box, score: 0.5, classID: classID, className: "c\(classID)")
    }

    @Test("Agreement: boxes of the same class with IoU ≥ 0.9, one to one, over the reference's boxes")
    func agreement() {
        let reference = [
            Self.detection([0, 0, 100, 100], 0), Self.detection([200, 200, 300, 300], 1),
            Self.detection([0, 0, 10, 10], 2), Self.detection([400, 0, 500, 100], 3),
        ]
        let candidate = [
            Self.detection([2, 0, 102, 100], 0),  // IoU 9800 / 10200 = 0.96: matched
            Self.detection([200, 200, 300, 300], 0),  // same place, another class: not matched
            Self.detection([1, 0, 11, 10], 2),  // IoU 90 / 110 = 0.82: not matched
            Self.detection([400, 0, 500, 100], 3), Self.detection([400, 0, 500, 100], 3),  // one match only
        ]
        #expect(DetectionAgreement.iou([0, 0, 100, 100], [2, 0, 102, 100]) == 9800.0 / 10200.0)
        #expect(DetectionAgreement.iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0)
        let measured = DetectionAgreement(reference: reference, candidate: candidate)
        #expect(measured.matched == 2 && measured.reference == 4 && measured.candidate == 5)
        #expect(measured.share == 0.5)
        // A looser threshold takes the 0.82 pair too.
        #expect(DetectionAgreement(reference: reference, candidate: candidate, minimumIoU: 0.8).matched == 3)

        // Two reference boxes that both overlap one candidate: only one is matched.
        let twins = DetectionAgreement(
            reference: [Self.detection([0, 0, 100, 100], 0), Self.detection([1, 0, 101, 100], 0)],
            candidate: [Self.detection([0, 0, 100, 100], 0)])
        #expect(twins.matched == 1 && twins.share == 0.5)

        var total = DetectionAgreement()
        #expect(total.share == 1)
        total += measured
        total += twins
        #expect(total == DetectionAgreement(reference: reference, candidate: candidate) + twins)
        #expect(total.matched == 3 && total.reference == 6 && total.share == 0.5)
        #expect(DetectionAgreement(reference: [], candidate: candidate).share == 1)
    }
}
