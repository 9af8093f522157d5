import Foundation

/// One line of `detections.jsonl`: an input path with its result or a named error.
public struct DetectionRecord: Sendable, Hashable, Codable {
    public var path: String
    public var result: DetectionResult?
    public var error: DetectionError?

    public init(path: String, result: DetectionResult? = nil, error: DetectionError? = nil) {
        self.path = path
        self.result = result
        self.error = error
    }

    public var succeeded: Bool { result != nil }
}

/// `detections.jsonl`: one ``DetectionRecord`` per input, appended and flushed as results arrive, so that
/// it is also the journal `--resume` reads. Not thread-safe: use it from one task.
public final class DetectionJournal {
    public let url: URL
    private let handle: FileHandle
    private let encoder = DetectionJournal.makeEncoder()

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

    /// Replaces the journal file with `records`, one per line, atomically: a temporary file beside it is
    /// written and renamed over it, so an interruption leaves the old journal or the new one, never half.
    public static func replace(_ url: URL, with records: [DetectionRecord]) throws {
        let encoder = makeEncoder()
        var data = Data()
        for record in records {
            data.append(try encoder.encode(record))
            data.append(UInt8(ascii: "\n"))
        }
        try data.write(to: url, options: .atomic)
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
