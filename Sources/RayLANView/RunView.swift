import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RayLAN

/// The local web view of a run (`raylan view`, `raylan detect --view`): a page on 127.0.0.1, on a port the system
/// picks, behind a random token in its URL. It only reads: the gallery's entries, their pictures, the run's
/// progress.
///
/// ```swift
/// try await RunView.serve(.gallery(RunGallery(folder: out))) { url in
///     print(url)                      // http://127.0.0.1:PORT/TOKEN/
///     try await Task.sleep(for: .seconds(3600))
/// }
/// ```
///
/// Every request whose path does not start with the token is refused (403). The page's files are the package's
/// (`Assets/`): nothing is fetched from elsewhere.
public enum RunView {
    /// What a view shows.
    public enum Content: Sendable {
        /// A run of images: a gallery.
        case gallery(RunGallery)
        /// Videos and streams: each one's newest picture with its boxes, its counts over time, how it keeps up.
        case live(LiveFeed)
    }

    /// Serves `content` while `body` runs, and stops when it returns or throws.
    /// - Parameters:
    ///   - content: what the page shows.
    ///   - logger: the server's log (default: none).
    ///   - body: runs with the page's URL, token included (a secret: keep it out of logs and files).
    /// - Returns: what `body` returns.
    /// - Throws: ``RunViewError`` when the page's files are missing or no port can be had; what `body` throws.
    public static func serve<Value: Sendable>(
        _ content: Content,
        logger: Logger = Logger(label: "raylan.view", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (URL) async throws -> Value
    ) async throws -> Value {
        let assets = try Assets.load()
        let token = Token.random()
        let router = Router()
        router.add(middleware: TokenGate(token: token))
        let base = router.group(RouterPath(token))
        base.get("assets/:name") { _, context in
            assets.response(for: context.parameters.get("name") ?? "")
        }
        switch content {
        case .gallery(let gallery): Self.route(gallery, on: base, assets: assets)
        case .live(let feed): Self.route(feed, on: base, assets: assets)
        }
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                announce.yield(channel.localAddress?.port ?? 0)
                announce.finish()
            }, logger: logger)
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask {
                defer { announce.finish() }
                try await app.run()
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                // The server ended before it listened: its error.
                _ = try await group.next()
                throw RunViewError.noPort
            }
            let url = URL(string: "http://127.0.0.1:\(port)/\(token)/")!
            do {
                let value = try await body(url)
                group.cancelAll()
                return value
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}

extension RunView {
    static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
        response.headers[.contentType] = "application/json"
        return response
    }

    /// A run of images: the page, what changed since a version, each entry's picture.
    static func route(_ gallery: RunGallery, on base: RouterGroup<BasicRequestContext>, assets: Assets) {
        base.get { _, _ in assets.response(for: "index.html") }
        base.get("api/run") { request, _ in
            try json(await gallery.page(since: request.uri.queryParameters.get("since", as: Int.self) ?? 0))
        }
        base.get("image/:index") { _, context in
            guard let index = context.parameters.get("index", as: Int.self),
                let file = await gallery.imageFile(at: index)
            else { return Response(status: .notFound) }
            var response = Response(
                status: .ok, body: try await FileIO().loadFile(path: file.path, context: context))
            response.headers[.contentType] = Assets.imageType(of: file)
            return response
        }
    }

    /// Videos and streams: the page, the state now, and the events pushed as they come (server-sent events): a
    /// `frame` event for each source's newest picture (never a backlog: a page that reads slowly gets the newest
    /// when it reads again), a `stats` event each second, and `end` once every run ended.
    static func route(_ feed: LiveFeed, on base: RouterGroup<BasicRequestContext>, assets: Assets) {
        base.get { _, _ in assets.response(for: "live.html") }
        base.get("api/live") { _, _ in try json(feed.snapshot()) }
        base.get("live/events") { _, _ in
            var response = Response(
                status: .ok,
                body: ResponseBody { writer in
                    try await LiveEvents(feed: feed).write(to: &writer)
                })
            response.headers[.contentType] = "text/event-stream"
            return response
        }
    }
}

/// One page's stream of live events.
struct LiveEvents {
    let feed: LiveFeed
    /// How often the feed is looked at for a newer picture.
    static let tick: Duration = .milliseconds(50)

    /// A source's newest picture: its header, and its JPEG (base64 on this last, loopback leg: an event is text).
    struct Frame: Encodable {
        var source: Int
        var header: VideoPreview.Header
        var jpeg: String
    }

    func write(to writer: inout any ResponseBodyWriter) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func event(_ name: String, _ value: some Encodable) throws -> ByteBuffer {
            var buffer = ByteBuffer(string: "event: \(name)\ndata: ")
            buffer.writeBytes(try encoder.encode(value))
            buffer.writeString("\n\n")
            return buffer
        }
        var sent: [Int: Int] = [:]
        let clock = ContinuousClock()
        var lastStats = clock.now - .seconds(10)
        while true {
            // Each tick looks at the pictures only; the state of every source is copied once a second.
            for (index, preview) in feed.previews().enumerated() {
                guard let preview, preview.header.frame != sent[index] else { continue }
                sent[index] = preview.header.frame
                try await writer.write(
                    try event(
                        "frame",
                        Frame(source: index, header: preview.header, jpeg: preview.jpeg.base64EncodedString())))
            }
            let over = feed.isOver
            if over || clock.now - lastStats >= .seconds(1) {
                lastStats = clock.now
                try await writer.write(try event("stats", feed.snapshot()))
            }
            if over {
                try await writer.write(ByteBuffer(string: "event: end\ndata: {}\n\n"))
                try await writer.finish(nil)
                return
            }
            try await Task.sleep(for: Self.tick)
        }
    }
}

/// Why the view could not start: its page's files are missing, or its server could not listen. A struct with an
/// extensible ``Code``, as RayLAN's other errors.
public struct RunViewError: RayLANError, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The page's files are not beside the program.
        public static let missingAssets = Code("missing_assets")
        /// The server did not listen on 127.0.0.1.
        public static let noPort = Code("no_port")
    }

    public let code: Code
    /// What failed.
    public let message: String
    /// What to do about it.
    public let remedy: String

    public var description: String { "\(message). \(remedy)" }
    public var isUsageError: Bool { false }

    static func missingAssets(_ place: String) -> RunViewError {
        RunViewError(
            code: .missingAssets, message: "The view's page files are missing (\(place))",
            remedy: "They are built beside raylan (RayLAN_RayLANView.resources): run raylan from its build folder, "
                + "or copy that folder beside it.")
    }

    static let noPort = RunViewError(
        code: .noPort, message: "The view's server could not listen on 127.0.0.1",
        remedy: "Run 'raylan doctor', or try again.")
}

/// The URL's secret: 128 random bits, as 32 hex digits.
enum Token {
    static func random() -> String { randomHex(bytes: 16) }

    /// Whether `candidate` is `token`, in time that does not depend on where they differ.
    static func matches(_ candidate: Substring, _ token: String) -> Bool {
        let a = Array(candidate.utf8)
        let b = Array(token.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Refuses (403) every request whose path does not start with the token; sends `/TOKEN` on to `/TOKEN/` (the
/// page's relative links need the slash); keeps answers out of caches and referrers.
struct TokenGate<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let path = request.uri.path
        let first = path.dropFirst().prefix { $0 != "/" }
        guard path.hasPrefix("/"), Token.matches(first, token) else {
            return Response(
                status: .forbidden,
                body: .init(byteBuffer: ByteBuffer(string: "This view needs the URL raylan printed, token included.\n"))
            )
        }
        if path.count == token.count + 1 {
            return Response(status: .movedPermanently, headers: [.location: "/\(token)/"])
        }
        var response = try await next(request, context)
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.contentSecurityPolicy] =
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"
        return response
    }
}

/// The page's files, read once from the package's resources.
struct Assets: Sendable {
    /// The files the page has, by name.
    static let names = ["index.html", "live.html", "view.css", "draw.js", "view.js", "live.js"]
    private let files: [String: Data]

    static func load() throws -> Assets {
        guard let folder = Bundle.module.url(forResource: "Assets", withExtension: nil) else {
            throw RunViewError.missingAssets("no Assets folder in the bundle")
        }
        var files: [String: Data] = [:]
        for name in names {
            guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(name).path) else {
                throw RunViewError.missingAssets(folder.appendingPathComponent(name).path)
            }
            files[name] = data
        }
        return Assets(files: files)
    }

    func response(for name: String) -> Response {
        guard let data = files[name] else { return Response(status: .notFound) }
        var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data)))
        response.headers[.contentType] =
            switch (name as NSString).pathExtension {
            case "html": "text/html; charset=utf-8"
            case "css": "text/css; charset=utf-8"
            default: "text/javascript; charset=utf-8"
            }
        return response
    }

    static func imageType(of file: URL) -> String {
        switch file.pathExtension.lowercased() {
        case "png": "image/png"
        case "webp": "image/webp"
        case "bmp": "image/bmp"
        default: "image/jpeg"
        }
    }
}
