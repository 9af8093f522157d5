#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import RayLANCore
import RayLANGateway

/// One line of `detections.jsonl`: an input path with its result or a named error, and the settings that
/// produced it.
public struct DetectionRecord: Sendable, Hashable, Codable {
    public var path: String
    public var result: DetectionResult?
    public var error: DetectionError?
    /// The model and the options that change results; nil in lines written before RayLAN recorded them.
    /// Encoded as `run`.
    public var settings: Settings?
    /// Images read on the cluster: the node that read it.
    public var node: String?
    /// Images read on the cluster: its annotated copy, relative to the run's folder (a name the cluster sent:
    /// check it before use).
    public var annotated: String?

    public init(
        path: String, result: DetectionResult? = nil, error: DetectionError? = nil, settings: Settings? = nil,
        node: String? = nil, annotated: String? = nil
    ) {
        self.path = path
        self.result = result
        self.error = error
        self.settings = settings
        self.node = node
        self.annotated = annotated
    }

    public var succeeded: Bool { result != nil }

    /// Whether the line stands when a run resumes: a result, or an error that is the input's own
    /// (``finalErrorCodes``). Every other error (`unavailable`, `unreadable`, `output_failed`, …) may pass, so its
    /// input is sent again. The rule of every source that resumes: images on the cluster keep the same lines
    /// (`contract.FINAL_ERRORS`, in `contracts/vocabulary.json`).
    public var isFinal: Bool {
        guard let error else { return succeeded }
        return Self.finalErrorCodes.contains(error.code)
    }

    /// The errors that are the input's own (the file itself): `empty`, `unsupported_format`, `decode_failed`,
    /// `too_large`, `not_a_file`.
    public static let finalErrorCodes: [DetectionError.Code] = [
        .empty, .unsupportedFormat, .decodeFailed, .tooLarge, .notAFile,
    ]

    enum CodingKeys: String, CodingKey {
        case path, result, error, node, annotated
        case settings = "run"
    }

    /// What a result depends on besides the image: the model (``DetectionDeployment/ModelIdentity``) and the
    /// request's options. `resume` refuses a journal written with other settings.
    public struct Settings: Sendable, Hashable, Codable {
        /// The service's model; nil for an application deployed without a recorded identity.
        public var model: DetectionDeployment.ModelIdentity?
        /// `conf`.
        public var confidence: Double
        /// `iou`.
        public var iou: Double
        /// The class filter, sorted; nil keeps all.
        public var classes: [Int]?
        /// The service's model input size (`imgsz`); nil: the model's own.
        public var imageSize: Int?
        /// The client's shrink as asked (``MaxSide``: `auto`, `off` or pixels); lines from before it existed
        /// read as `off`, which is what those runs did.
        public var maxSide: String

        public init(
            model: DetectionDeployment.ModelIdentity?, options: DetectionOptions, imageSize: Int? = nil,
            maxSide: MaxSide = .off
        ) {
            self.model = model
            self.confidence = options.confidence
            self.iou = options.iou
            let classes = Set(options.classes ?? []).sorted()
            self.classes = classes.isEmpty ? nil : classes
            self.imageSize = imageSize
            self.maxSide = maxSide.description
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            model = try container.decodeIfPresent(DetectionDeployment.ModelIdentity.self, forKey: .model)
            confidence = try container.decode(Double.self, forKey: .confidence)
            iou = try container.decode(Double.self, forKey: .iou)
            classes = try container.decodeIfPresent([Int].self, forKey: .classes)
            imageSize = try container.decodeIfPresent(Int.self, forKey: .imageSize)
            maxSide = try container.decodeIfPresent(String.self, forKey: .maxSide) ?? MaxSide.off.description
        }

        enum CodingKeys: String, CodingKey {
            case model, iou, classes
            case confidence = "conf"
            case imageSize = "imgsz"
            case maxSide = "max_side"
        }

        /// What differs from `other`, one readable item per setting, e.g. `conf 0.25 → 0.5`.
        public func differences(from other: Settings) -> [String] {
            var items: [String] = []
            func add(_ name: String, _ old: String, _ new: String) {
                if old != new { items.append("\(name) \(old) → \(new)") }
            }
            add("model", other.model?.description ?? "unrecorded", model?.description ?? "unrecorded")
            add("conf", "\(other.confidence)", "\(confidence)")
            add("iou", "\(other.iou)", "\(iou)")
            func classList(_ ids: [Int]?) -> String { ids.map { $0.map(String.init).joined(separator: ",") } ?? "all" }
            add("classes", classList(other.classes), classList(classes))
            add("imgsz", other.imageSize.map(String.init) ?? "the model's", imageSize.map(String.init) ?? "the model's")
            add("max-side", other.maxSide, maxSide)
            return items
        }
    }
}

/// `detections.jsonl`, the one journal writer of every source: one line per input (a ``DetectionRecord``) or per
/// video frame (the cluster's own line, kept as its text), appended as results arrive, so that it is also the
/// journal `--resume` reads. Not thread-safe: use it from one task.
public final class DetectionJournal {
    /// The journal's name in an output folder.
    public static let name = "detections.jsonl"
    public let url: URL
    private let handle: FileHandle
    private let encoder = DetectionJournal.makeEncoder()

    /// Creates `folder` and starts a new journal in it, the previous one moved aside (``moveAside(_:keeping:)``).
    public static func new(in folder: URL) throws -> DetectionJournal {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try moveAside(url)
        return try DetectionJournal(url: url)
    }

    /// Opens (creating) the journal for appending.
    public init(url: URL) throws {
        self.url = url
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    /// Appends one record as one line.
    public func append(_ record: DetectionRecord) throws {
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: line)
    }

    /// Appends a line as the cluster made it (a video's frame), not encoded again.
    public func append(line text: String) throws {
        try handle.write(contentsOf: Data((text + "\n").utf8))
    }

    /// Replaces the journal file with `records`, one per line, atomically: a temporary file beside it is
    /// written, flushed to disk and renamed over it (`rename(2)`), so an interruption leaves the old journal or
    /// the new one, never half.
    public static func replace(_ url: URL, with records: [DetectionRecord]) throws {
        let encoder = makeEncoder()
        var data = Data()
        for record in records {
            data.append(try encoder.encode(record))
            data.append(UInt8(ascii: "\n"))
        }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try handle.write(contentsOf: data)
            try handle.synchronize()
            guard rename(temporary.path, url.path) == 0 else {
                let code = POSIXErrorCode(rawValue: errno) ?? .EIO
                throw CocoaError(.fileWriteUnknown, userInfo: [NSUnderlyingErrorKey: POSIXError(code)])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Moves the journal aside, to `<name>.1` (an earlier `.1` to `.2`, and so on, keeping `keeping` of them),
    /// so that a new run starts a new one without losing the last. Does nothing when there is no journal or
    /// it is empty.
    /// - Returns: where the journal went, or nil.
    @discardableResult
    public static func moveAside(_ url: URL, keeping: Int = 3) throws -> URL? {
        let fileManager = FileManager.default
        guard let size = try? fileManager.attributesOfItem(atPath: url.path)[.size] as? Int, size > 0 else {
            return nil
        }
        func numbered(_ index: Int) -> URL { URL(fileURLWithPath: url.path + ".\(index)") }
        try? fileManager.removeItem(at: numbered(max(keeping, 1)))
        for index in stride(from: max(keeping, 1) - 1, through: 1, by: -1)
        where fileManager.fileExists(atPath: numbered(index).path) {
            try fileManager.moveItem(at: numbered(index), to: numbered(index + 1))
        }
        try fileManager.moveItem(at: url, to: numbered(1))
        return numbered(1)
    }

    /// One compact line per record, keys sorted.
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Every complete record in a journal file (a torn last line from an interrupted run is ignored).
    public static func read(_ url: URL) -> [DetectionRecord] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? decoder.decode(DetectionRecord.self, from: Data($0))
        }
    }
}
