import Foundation
import RayLANCore
import RayLANGateway

/// Long work on the cluster that the client follows by polling: one of `raylan_detect.session`'s classes
/// (`VideoSession`, `DatasetSession`) hosted as an actor by RayLAN's gateway.
///
/// The session runs its work in a thread of its actor and keeps the result lines the client has not fetched
/// yet; ``poll(cursor:wait:)`` fetches them in order and acknowledges the earlier ones, so the cluster holds only
/// what is in flight. The actor is pinned to the head node, so that what it writes (its `out_dir`) is found again
/// by a later session (`--resume`).
struct ClusterSession: Sendable {
    /// Where the work is.
    struct State: StringValue {
        var rawValue: String
        init(rawValue: String) { self.rawValue = rawValue }

        static let running = State(rawValue: "running")
        static let finished = State(rawValue: "finished")
        static let failed = State(rawValue: "failed")
        static let stopped = State(rawValue: "stopped")
        static let created = State(rawValue: "created")
        /// Its client made no call for the session's lease: it stopped itself (``OnClusterError/Code/clientGone``).
        static let abandoned = State(rawValue: "abandoned")
        /// Every state the cluster code names (`contract.SESSION_STATES`), in its order.
        static let all: [State] = [.created, .running, .finished, .failed, .stopped, .abandoned]

        var isTerminal: Bool { self != .running && self != .created }
    }

    /// The session's own account of its failure.
    struct Failure: Codable, Hashable {
        var code: String
        var message: String
        var remedy: String?
        var traceback: String?

        var error: OnClusterError {
            OnClusterError(
                OnClusterError.Code(rawValue: code), message, remedy: remedy?.isEmpty == true ? nil : remedy,
                traceback: traceback)
        }
    }

    /// One of the session's result lines: the JSON text the session made once (where it writes a journal, that
    /// journal's line byte for byte), decoded here only by what reads it.
    struct Line: Sendable, Hashable {
        var text: String

        /// The line decoded as `type` (one parse of its text).
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONDecoder().decode(T.self, from: Data(text.utf8))
        }
    }

    /// One ``poll(cursor:wait:)`` answer.
    struct Poll: Codable {
        /// The lines, each its JSON text (`contract.poll_page`).
        var lines: [String]
        var cursor: Int
        var state: State
        var error: Failure?
        var progress: JSONValue?
    }

    /// A file the session wrote on the cluster.
    struct Output: Decodable, Hashable {
        var name: String
        var bytes: Int
    }

    /// The resource that pins an actor to the head node (every Ray node has its own `node:…` resource; the head
    /// also this one).
    static let headNode = ResourceRequest(custom: ["node:__internal_head__": 0.001])
    /// Bytes per ``download(_:into:)`` read (the session's own limit).
    static let readBytes = 8 * 1024 * 1024

    let actor: RemoteActor

    /// Creates the session's actor on the head node (`module:Class` with keyword arguments).
    static func create(
        _ className: String, keywords: [String: RemoteArgument], on gateway: Gateway, cpus: Double = 1
    ) async throws -> ClusterSession {
        var resources = headNode
        resources.cpus = cpus
        let actor = try await gateway.actor(className, arguments: [], keywords: keywords, resources: resources)
        return ClusterSession(actor: actor)
    }

    /// Starts the work; returns what the session knows at once.
    func start() async throws -> JSONValue {
        try await actor.call("start", as: JSONValue.self)
    }

    /// The result lines from `cursor` on (waiting up to `wait` for one), the state, the error and the progress.
    func poll(cursor: Int, wait: Duration = .milliseconds(500)) async throws -> Poll {
        try await actor.call("poll", keywords: ["cursor": cursor, "limit": 2000, "wait": wait.seconds], as: Poll.self)
    }

    /// Follows the work to its end: polls until the session has ended and every line is fetched, handing `line`
    /// each line in order and `progress` each new value of its progress counters.
    /// - Throws: the session's own failure (``OnClusterError``), what `line` or `progress` throw, ``GatewayError``,
    ///   `CancellationError`.
    func follow(
        wait: Duration, line: (Line) throws -> Void, progress: (JSONValue) throws -> Void = { _ in }
    ) async throws {
        var cursor = 0
        var lastProgress: JSONValue?
        while true {
            let page = try await poll(cursor: cursor, wait: wait)
            cursor = page.cursor
            for text in page.lines { try line(Line(text: text)) }
            if let value = page.progress, value != lastProgress {
                lastProgress = value
                try progress(value)
            }
            if page.state.isTerminal && page.lines.isEmpty {
                if let error = page.error { throw error.error }
                return
            }
            try Task.checkCancellation()
        }
    }

    /// A video session's newest preview of a frame after `after` (``VideoPreview``'s bytes), waiting up to `wait`
    /// for one; empty when none came or the session has ended.
    func preview(after: Int, wait: Duration) async throws -> Data {
        try await actor.call("preview", keywords: ["after": after, "wait": wait.seconds], as: Data.self)
    }

    /// The files the session wrote.
    func outputs() async throws -> [Output] {
        try await actor.call("outputs", as: [Output].self)
    }

    /// Downloads one of its files, in pieces, into the run's output folder `folder`; returns where it went.
    ///
    /// The name is the cluster's and is not trusted as a path: ``DownloadTarget`` takes only a plain relative name
    /// (`annotated/a.jpg`, never `..`, `a/../x` or `/etc/x`) with no symlink on its way and no folder at its end,
    /// before anything is written. The bytes go to a temporary file beside the target, renamed into place when
    /// complete (an existing regular file is replaced whole).
    /// - Throws: ``OnClusterError`` `badResponse` for a name refused or a piece longer than asked for,
    ///   `sessionFailed` when the file ends before its listed size; ``GatewayError``. Nothing of a failed download is
    ///   left.
    func download(_ output: Output, into folder: URL) async throws -> URL {
        let target = try DownloadTarget(output.name, in: folder)
        try await target.write { handle in
            var offset = 0
            while offset < output.bytes {
                let asked = min(Self.readBytes, output.bytes - offset)
                let piece = try await actor.call("read", output.name, offset, asked, as: Data.self)
                if piece.isEmpty {
                    throw OnClusterError(
                        .sessionFailed,
                        "\(output.name) on the cluster ended at \(offset) of its \(output.bytes) bytes while downloading",
                        remedy: "Download it again (the run's folder on the head node keeps it).")
                }
                if piece.count > asked {
                    throw OnClusterError(
                        .badResponse,
                        "The cluster sent \(piece.count) bytes of \(output.name) at \(offset), "
                            + "where \(asked) were asked for")
                }
                try handle.write(contentsOf: piece)
                offset += piece.count
            }
        }
        return target.url
    }

    /// Stops the work, removes the session's folder on the cluster when the session made it (no folder was
    /// named: a video's uploaded copy and outputs, once downloaded, are not left in the head's temp folder) and
    /// removes the actor; never throws (the actor may be gone already). Runs to its end even when the calling
    /// task is cancelled (Ctrl-C is what usually brings it here).
    func close(stopping: Bool) async {
        let actor = self.actor
        await Task.detached {
            if stopping { _ = try? await actor.call("stop", timeout: .seconds(15), as: JSONValue.self) }
            _ = try? await actor.call("discard", timeout: .seconds(30), as: JSONValue.self)
            try? await actor.kill()
        }.value
    }
}
