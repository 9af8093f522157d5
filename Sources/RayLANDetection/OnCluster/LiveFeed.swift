import Foundation
import RayLANCore
import RayLANGateway

/// Videos and streams as a person watches them (`raylan detect … --view`): per source the newest picture with its
/// boxes (``VideoPreview``), the per-class counts over the last minutes, and how the run keeps up. It takes the
/// runs' events (``take(_:source:)``) and only keeps what the view shows: one picture and a bounded series per
/// source. Its calls are synchronous (a run's events come in order, and keep it).
public final class LiveFeed: Sendable {
    /// How a source's run is doing.
    public struct Stats: Sendable, Hashable, Codable {
        /// `starting`, `running`, `finished` or `failed`.
        public var state: String = "starting"
        public var framesRead = 0
        public var framesProcessed = 0
        /// Frames a live stream dropped because the detector fell behind.
        public var framesDropped = 0
        /// Frames processed a second, as the session counts them.
        public var fps = 0.0
        /// The newest picture's milliseconds from its read to its detections, on the cluster.
        public var latencyMs: Double?
        public var reconnects = 0
        /// Frames the detector failed on, and breaks of the stream.
        public var errors = 0
        /// Why the run failed, once it did.
        public var message: String?

        enum CodingKeys: String, CodingKey {
            case state, fps, reconnects, errors, message
            case framesRead = "frames_read"
            case framesProcessed = "frames_processed"
            case framesDropped = "frames_dropped"
            case latencyMs = "latency_ms"
        }
    }

    /// Per class, the most objects seen in one frame during one second of the source.
    public struct Point: Sendable, Hashable, Codable {
        /// The second's start, in seconds of the source.
        public var time: Double
        public var counts: [String: Int]
    }

    /// One source as the view shows it (its picture apart).
    public struct Source: Sendable, Hashable, Codable {
        public var name: String
        public var stats = Stats()
        /// The last seconds with a processed frame (``LiveFeed/seriesLength`` at most), oldest first.
        public var series: [Point] = []
        /// Each class seen, by name: its id (the colour the view gives it).
        public var classes: [String: Int] = [:]
        /// The newest picture's frame, where there is one.
        public var previewFrame: Int?

        enum CodingKeys: String, CodingKey {
            case name, stats, series, classes
            case previewFrame = "preview_frame"
        }
    }

    /// Every source, in the order they were given.
    public struct Snapshot: Sendable, Hashable, Codable {
        public var sources: [Source]
    }

    /// Seconds of counts kept per source while a run goes on.
    public static let seriesLength = 120
    /// Seconds of counts kept per source of a finished run's journal (``finished(_:)``).
    public static let finishedSeriesLength = 3600

    private struct State {
        var sources: [Source]
        var previews: [VideoPreview?]
    }

    private let state: LockedBox<State>
    private let seriesLength: Int

    /// - Parameters:
    ///   - names: the sources' names, as the events will give them.
    ///   - seriesLength: seconds of counts kept per source (default ``seriesLength``).
    public init(sources names: [String], seriesLength: Int = LiveFeed.seriesLength) {
        state = LockedBox(State(sources: names.map { Source(name: $0) }, previews: names.map { _ in nil }))
        self.seriesLength = seriesLength
    }

    /// A finished video run as its journals hold it (`raylan view` of its folder): each source's counts over time
    /// and its frames, no pictures (a run keeps none but its annotated video). Lines that are not frames are
    /// skipped; a journal that cannot be read is an error.
    /// - Parameter journals: each source's name and `detections.jsonl`.
    public static func finished(_ journals: [(source: String, journal: URL)]) throws -> LiveFeed {
        let feed = LiveFeed(sources: journals.map(\.source), seriesLength: finishedSeriesLength)
        for (source, journal) in journals {
            let text = try String(contentsOf: journal, encoding: .utf8)
            var processed = 0
            for line in text.split(separator: "\n") {
                guard let event = try? VideoRun.event(from: ClusterSession.Line(text: String(line))),
                    case .frame = event
                else { continue }
                processed += 1
                feed.take(event, source: source)
            }
            feed.take(.frames(.object(["frames_processed": .number(Double(processed))])), source: source)
        }
        feed.finish()
        return feed
    }

    /// What the view shows now, pictures apart.
    public func snapshot() -> Snapshot { state.withLock { Snapshot(sources: $0.sources) } }

    /// Each source's newest picture, in the sources' order (nil where none came yet).
    public func previews() -> [VideoPreview?] { state.withLock { $0.previews } }

    /// The newest picture of the source at `index`.
    public func preview(at index: Int) -> VideoPreview? {
        state.withLock { $0.previews.indices.contains(index) ? $0.previews[index] : nil }
    }

    /// Whether every source's run has ended.
    public var isOver: Bool {
        state.withLock { $0.sources.allSatisfy { $0.stats.state == "finished" || $0.stats.state == "failed" } }
    }

    /// Takes one event of the source named `name`.
    public func take(_ event: DetectionEvent, source name: String) {
        state.withLock { state in
            guard let index = state.sources.firstIndex(where: { $0.name == name }) else { return }
            Self.apply(event, to: &state.sources[index], preview: &state.previews[index], seriesLength: seriesLength)
        }
    }

    private static func apply(
        _ event: DetectionEvent, to source: inout Source, preview kept: inout VideoPreview?, seriesLength: Int
    ) {
        switch event {
        case .opened: source.stats.state = "running"
        case .frame(let frame):
            if frame.error != nil { source.stats.errors += 1 }
            add(frame, to: &source, seriesLength: seriesLength)
        case .reconnecting: source.stats.errors += 1
        case .frames(let progress):
            source.stats.framesRead = Int(progress["frames_read"]?.doubleValue ?? Double(source.stats.framesRead))
            source.stats.framesProcessed = Int(
                progress["frames_processed"]?.doubleValue ?? Double(source.stats.framesProcessed))
            source.stats.framesDropped = Int(
                progress["frames_dropped"]?.doubleValue ?? Double(source.stats.framesDropped))
            source.stats.fps = progress["fps"]?.doubleValue ?? source.stats.fps
            source.stats.reconnects = Int(progress["reconnects"]?.doubleValue ?? Double(source.stats.reconnects))
        case .finished(let summary):
            source.stats.state = "finished"
            guard let video = summary.video else { return }
            source.stats.framesRead = video.framesRead
            source.stats.framesProcessed = video.framesProcessed
            source.stats.framesDropped = video.framesDropped
            source.stats.fps = video.fps
        case .preview(let preview):
            kept = preview
            source.previewFrame = preview.header.frame
            source.stats.latencyMs = preview.header.latencyMs
        case .deploying, .preparing, .checking, .uploading, .started, .answered, .progress, .reconnected, .report,
            .downloaded, .wrote:
            break
        }
    }

    /// The source's run failed with `message`.
    public func failed(source name: String, _ message: String) {
        state.withLock { state in
            guard let index = state.sources.firstIndex(where: { $0.name == name }) else { return }
            state.sources[index].stats.state = "failed"
            state.sources[index].stats.message = message
        }
    }

    /// Every run ended (those that did not fail, finished).
    public func finish() {
        state.withLock { state in
            for index in state.sources.indices where state.sources[index].stats.state != "failed" {
                state.sources[index].stats.state = "finished"
            }
        }
    }

    private static func add(_ frame: FrameResult, to source: inout Source, seriesLength: Int) {
        var counts: [String: Int] = [:]
        for detection in frame.detections {
            counts[detection.className, default: 0] += 1
            source.classes[detection.className] = detection.classID
        }
        let second = frame.time.rounded(.down)
        if let last = source.series.last, last.time == second {
            source.series[source.series.count - 1].counts.merge(counts, uniquingKeysWith: max)
        } else if source.series.last.map({ $0.time < second }) ?? true {
            source.series.append(Point(time: second, counts: counts))
            if source.series.count > seriesLength { source.series.removeFirst() }
        }
    }
}
