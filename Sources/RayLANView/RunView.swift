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
/// try await RunView.serve(RunGallery(folder: out)) { url in
///     print(url)                      // http://127.0.0.1:PORT/TOKEN/
///     try await Task.sleep(for: .seconds(3600))
/// }
/// ```
///
/// Every request whose path does not start with the token is refused (403). The page's files are the package's
/// (`Assets/`): nothing is fetched from elsewhere.
public enum RunView {
    /// Serves `gallery` while `body` runs, and stops when it returns or throws.
    /// - Parameters:
    ///   - gallery: what the page shows.
    ///   - logger: the server's log (default: none).
    ///   - body: runs with the page's URL, token included (a secret: keep it out of logs and files).
    /// - Returns: what `body` returns.
    /// - Throws: ``RunViewError`` when the page's files are missing or no port can be had; what `body` throws.
    public static func serve<Value: Sendable>(
        _ gallery: RunGallery,
        logger: Logger = Logger(label: "raylan.view", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (URL) async throws -> Value
    ) async throws -> Value {
        let assets = try Assets.load()
        let token = Token.random()
        let router = Router()
        router.add(middleware: TokenGate(token: token))
        let base = router.group(RouterPath(token))
        base.get { _, _ in assets.response(for: "index.html") }
        base.get("assets/:name") { _, context in
            assets.response(for: context.parameters.get("name") ?? "")
        }
        base.get("api/run") { request, _ in
            let since = request.uri.queryParameters.get("since", as: Int.self) ?? 0
            let page = await gallery.page(since: since)
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            var response = Response(
                status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(page))))
            response.headers[.contentType] = "application/json"
            return response
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

/// Why the view could not start.
public struct RunViewError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    /// The page's files are not beside the program.
    static func missingAssets(_ place: String) -> RunViewError {
        RunViewError(
            description:
                "The view's page files are missing (\(place)). They are built beside raylan "
                + "(RayLAN_RayLANView.resources): run raylan from its build folder, or copy that folder beside it.")
    }

    /// The server did not listen.
    static let noPort = RunViewError(
        description: "The view's server could not listen on 127.0.0.1. Run 'raylan doctor', or try again.")
}

/// The URL's secret: 128 random bits, as 32 hex digits.
enum Token {
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }
            .joined()
    }

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
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'"
        return response
    }
}

/// The page's files, read once from the package's resources.
struct Assets: Sendable {
    /// The files the page has, by name.
    static let names = ["index.html", "view.css", "view.js"]
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
