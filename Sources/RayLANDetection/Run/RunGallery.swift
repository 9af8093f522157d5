import Foundation
import RayLANCore
import RayLANGateway

/// A run's results as a person looks at them (`raylan view`, `raylan detect --view`): one entry per input of the
/// output folder's `detections.jsonl`, read while the run writes it. It only reads.
///
/// The journal is either kind a run writes: a streamed run's records (``DetectionRecord``: the picture is the input
/// file on this machine) or an `--on-cluster` run's lines (the picture is its annotated copy when it was downloaded
/// into the folder, by a plain relative name: a path the cluster sent is never opened). A later line for the same
/// input (a resumed run's retry) replaces the earlier one in place.
///
/// ```swift
/// let gallery = RunGallery(folder: URL(fileURLWithPath: "raylan-out"))
/// let page = await gallery.page(since: 0)   // every entry, the classes, the progress
/// ```
public actor RunGallery {
    /// One input: its picture's size, its detections or its error.
    public struct Entry: Sendable, Hashable, Codable {
        /// Its place in the gallery (the order of the journal's first line for it).
        public var index: Int
        /// The input as the journal names it.
        public var name: String
        /// The picture's size in pixels (the boxes' space); nil for a failed input.
        public var width: Int?
        public var height: Int?
        public var detections: [Detection]
        public var error: DetectionError?
        /// Whether ``RunGallery/imageFile(at:)`` has a picture for it.
        public var hasImage: Bool
        /// Whether the picture has the boxes drawn already (an annotated copy made on the cluster).
        public var boxesDrawn: Bool
        /// The gallery's version when the entry last changed (``Page/version``).
        public var version: Int

        enum CodingKeys: String, CodingKey {
            case index, name, width, height, detections, error, version
            case hasImage = "has_image"
            case boxesDrawn = "boxes_drawn"
        }
    }

    /// Where the run is.
    public struct Progress: Sendable, Hashable, Codable {
        /// Whether the run still goes on.
        public enum State: String, Sendable, Hashable, Codable {
            /// The run goes on: more entries may come.
            case running
            /// The run ended, or the folder is a finished run's.
            case finished
        }

        public var state: State
        /// Inputs in the run, where the run said; nil for a finished folder (its entries are all).
        public var total: Int?
        /// Inputs answered (with a result or an error).
        public var done: Int
        /// Inputs with an error.
        public var failed: Int
    }

    /// What changed since a version: the entries, and where the run is.
    public struct Page: Sendable, Hashable, Codable {
        /// Entries changed after the version asked for, in index order.
        public var entries: [Entry]
        /// The gallery's version now: ask from it next time.
        public var version: Int
        public var progress: Progress
        /// The folder's name (the page's title).
        public var title: String
    }

    /// The output folder.
    public nonisolated let folder: URL
    /// Whether the gallery reads the folder's journal (else only the lines given to ``take(_:)``).
    public nonisolated let followsJournal: Bool
    /// What a streamed run's relative input paths are relative to (the run's working directory).
    public nonisolated let inputRoot: URL

    private var entries: [Entry] = []
    private var pictures: [URL?] = []
    private var indexByName: [String: Int] = [:]
    private var version = 0
    private var journal = JournalTail()
    private let decoder = JSONDecoder()
    /// Nil for a finished folder's gallery, which no run writes to.
    private var state: Progress.State?
    private var total: Int?

    /// A journal line longer than this is skipped (no run writes one: a line holds one input's boxes).
    public static let maxLineBytes = 4 << 20

    /// - Parameters:
    ///   - folder: the run's output folder (holding `detections.jsonl`, or about to).
    ///   - inputRoot: the directory a streamed run's relative paths are relative to (default: the current one).
    ///   - followsJournal: whether to read the folder's journal (default); an `--on-cluster` run's view takes its
    ///     lines as they come instead, since its folder holds an earlier run's journal until the new one is
    ///     downloaded at the end.
    public init(
        folder: URL, inputRoot: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        followsJournal: Bool = true
    ) {
        self.folder = folder
        self.inputRoot = inputRoot
        self.followsJournal = followsJournal
    }

    /// Whether `journal` is a video run's (its first line a frame's) rather than a run of images'.
    /// - Throws: the system's error when it cannot be read.
    public static func isVideoJournal(_ journal: URL) throws -> Bool {
        let handle = try FileHandle(forReadingFrom: journal)
        defer { try? handle.close() }
        let start = try handle.read(upToCount: maxLineBytes) ?? Data()
        let line = start.prefix { $0 != UInt8(ascii: "\n") }
        struct Kind: Decodable { var type: String? }
        return (try? JSONDecoder().decode(Kind.self, from: line))?.type == "frame"
    }

    /// The entries changed after `version`, and the progress; reads what the journal gained first.
    public func page(since version: Int) -> Page {
        refresh()
        let done = entries.count
        let failed = entries.filter { $0.error != nil }.count
        let progress = Progress(
            state: state ?? .finished, total: total, done: total.map { min(done, $0) } ?? done, failed: failed)
        return Page(
            entries: entries.filter { $0.version > version }, version: self.version, progress: progress,
            title: folder.lastPathComponent)
    }

    /// The picture of entry `index`, where there is one: a regular file with an image suffix.
    public func imageFile(at index: Int) -> URL? {
        guard pictures.indices.contains(index), let url = pictures[index] else { return nil }
        guard DetectionInput.imageExtensions.contains(url.pathExtension.lowercased()),
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey]), values.isRegularFile == true
        else { return nil }
        return url
    }

    /// The run goes on with `total` inputs (nil: not known yet); until ``finish()`` the page says `running`.
    public func started(total: Int?) {
        state = .running
        self.total = total
    }

    /// Takes a run's event: its count of inputs, and (for a gallery that does not follow a journal here, as for
    /// images on the cluster, whose journal is downloaded only at the end) each image's line as it comes. An event
    /// never changes whether the run goes on (one that comes late does not make a finished gallery run again).
    public func take(_ event: DetectionEvent) {
        switch event {
        case .started(let progress), .progress(let progress): total = progress.total
        case .answered(let record) where !followsJournal: add(record)
        default: break
        }
    }

    /// The run ended: the page says `finished`. Pictures that came meanwhile (an `--on-cluster` run's annotated
    /// copies, downloaded at its end) are shown.
    public func finish() {
        state = .finished
        refresh()
        for index in entries.indices where !entries[index].hasImage && imageFile(at: index) != nil {
            version += 1
            entries[index].hasImage = true
            entries[index].version = version
        }
    }

    /// Takes a line as an `--on-cluster` run's event gives it, before its journal is downloaded.
    public func take(_ line: Data) {
        ingest(line)
    }

    /// Reads the lines the journal gained since the last read; starts again when it was replaced (a new run
    /// moves the last one aside).
    private func refresh() {
        guard followsJournal else { return }
        let url = folder.appendingPathComponent(DetectionJournal.name)
        switch journal.read(url, maxLine: Self.maxLineBytes) {
        case .lines(let lines): for line in lines { ingest(line) }
        case .replaced(let lines):
            entries = []
            pictures = []
            indexByName = [:]
            version += 1
            for line in lines { ingest(line) }
        }
    }

    private func ingest(_ line: Data) {
        guard let record = try? decoder.decode(DetectionRecord.self, from: line),
            record.result != nil || record.error != nil
        else { return }
        add(record)
    }

    /// A record's entry and picture: a streamed input's own file; a file read on the cluster (it has its node)
    /// its annotated copy, by a plain name that stays in the folder.
    private func add(_ record: DetectionRecord) {
        var entry = Entry(
            index: 0, name: record.path, width: record.result?.image.width, height: record.result?.image.height,
            detections: record.result?.detections ?? [], error: record.error, hasImage: false, boxesDrawn: false,
            version: 0)
        var picture: URL?
        if record.node == nil {
            picture =
                record.path.hasPrefix("/")
                ? URL(fileURLWithPath: record.path) : inputRoot.appendingPathComponent(record.path).standardizedFileURL
        } else if let relative = record.annotated, DownloadTarget.problem(with: relative) == nil {
            let url = folder.appendingPathComponent(relative)
            if url.resolvingSymlinksInPath().path.hasPrefix(folder.resolvingSymlinksInPath().path + "/") {
                picture = url
                entry.boxesDrawn = true
            }
        }
        add(entry, picture: picture)
    }

    /// Adds the entry, or replaces the one of the same input in place.
    private func add(_ entry: Entry, picture: URL?) {
        var entry = entry
        version += 1
        entry.version = version
        if let index = indexByName[entry.name] {
            entry.index = index
            pictures[index] = picture
            entries[index] = entry
        } else {
            entry.index = entries.count
            indexByName[entry.name] = entry.index
            entries.append(entry)
            pictures.append(picture)
        }
        entries[entry.index].hasImage = imageFile(at: entry.index) != nil
    }
}

/// The complete lines a growing file gained since the last read. A line longer than the bound is skipped.
struct JournalTail {
    enum Read {
        /// Lines after the last read.
        case lines([Data])
        /// The file is another one (or shorter) than at the last read: every line of the new one.
        case replaced([Data])
    }

    private var identity: (device: Int, inode: Int)?
    private var offset: UInt64 = 0

    /// Reads at most 64 MiB a call; the rest comes at the next.
    mutating func read(_ url: URL, maxLine: Int) -> Read {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
            let size = (attributes[.size] as? NSNumber)?.uint64Value
        else { return identity == nil ? .lines([]) : reset() }
        let device = (attributes[.systemNumber] as? NSNumber)?.intValue ?? 0
        let inode = (attributes[.systemFileNumber] as? NSNumber)?.intValue ?? 0
        var replaced = false
        if let identity, identity != (device, inode) || size < offset {
            replaced = true
            offset = 0
        }
        identity = (device, inode)
        guard size > offset, let handle = try? FileHandle(forReadingFrom: url) else {
            return replaced ? .replaced([]) : .lines([])
        }
        defer { try? handle.close() }
        var lines: [Data] = []
        do {
            try handle.seek(toOffset: offset)
            let chunk = try handle.read(upToCount: Int(min(size - offset, 64 << 20))) ?? Data()
            var start = chunk.startIndex
            while let end = chunk[start...].firstIndex(of: UInt8(ascii: "\n")) {
                if end - start <= maxLine && end > start { lines.append(chunk[start..<end]) }
                start = end + 1
            }
            // A line longer than a whole chunk is skipped past; a short partial one waits for its end.
            if start == chunk.startIndex && chunk.count >= 64 << 20 { start = chunk.endIndex }
            offset += UInt64(start - chunk.startIndex)
        } catch {
            return replaced ? .replaced([]) : .lines([])
        }
        return replaced ? .replaced(lines) : .lines(lines)
    }

    /// The file is gone: the next one is read from its start.
    private mutating func reset() -> Read {
        identity = nil
        offset = 0
        return .replaced([])
    }
}
