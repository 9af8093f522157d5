import Foundation
import Logging
import NIOHTTP1
import RayLANCore
import RayLANGateway

/// Sends images to a deployed detection service (the Serve proxy, not the dashboard).
///
/// ```swift
/// let client = try await DetectionClient(cluster: cluster, application: "shapes-yolo11n")
/// let result = try await client.detect(Data(contentsOf: imageURL))
/// ```
///
/// ## Retries
/// A request is sent again, with backoff, after 503, 429 or 408 (honouring `Retry-After`, capped), after a
/// bare 500 (Serve's answer when the replica died mid-request; Serve does not replay it), 502, 504 and
/// connection loss, up to ``RetryPolicy/attempts`` tries. The service's own refusals (400, 401, 413, 422 with
/// its error JSON) and an answer over the size cap are never retried. Every input ends with a result or a
/// named ``DetectionError``. See ``RetryPolicy`` for the rules and defaults.
public struct DetectionClient: Sendable {
    public let cluster: RayCluster
    /// Where the application answers, e.g. `http://192.168.1.130:8000/raylan/shapes-yolo11n`.
    public let endpoint: ServeEndpoint
    /// When and how often requests are sent again.
    /// Default ``RetryPolicy/init(attempts:initialBackoff:maxBackoff:maxRetryAfter:)``.
    public var retryPolicy = RetryPolicy()
    /// The longer side, in pixels, that JPEG files are shrunk to before sending (at least: see
    /// ``DownscaledImage``), their answers mapped back to the file's pixels; nil sends every file as it is.
    /// Applies to the files this client reads (``detect(file:options:)``, ``detect(files:options:)``,
    /// ``results(for:file:concurrency:imagesPerRequest:options:)``), each shrunk as it is read; bytes passed in are
    /// sent as they are (shrink them with ``DownscaledImage/make(_:maxSide:)``). ``modelImageSize()`` is the model's
    /// own size, what ``MaxSide/auto`` uses. Default nil.
    public var maxSide: Int?
    /// Whether the last request found nothing listening at the endpoint after every try (its host went down):
    /// until one gets an answer, a request is tried once, so that a run facing a dead service gives up in
    /// seconds rather than spending the whole retry schedule on every input. Shared by the client's copies.
    let endpointDown = LockedBox(false)
    /// Tries per request, the first included (``RetryPolicy/attempts``). Default 5.
    public var attempts: Int {
        get { retryPolicy.attempts }
        set { retryPolicy.attempts = newValue }
    }

    /// A client for the application at `endpoint` (see ``RayCluster/serveEndpoint(for:)``).
    public init(cluster: RayCluster, endpoint: ServeEndpoint) {
        self.cluster = cluster
        self.endpoint = endpoint
    }

    /// A client for a running application, its port, route and service key read from Serve (over the
    /// dashboard, so the key is exactly as protected as the dashboard).
    /// - Parameter key: a key to send instead of the one the application was deployed with. Default nil.
    /// - Throws: ``ServeError`` (`notDeployed`) when Serve does not run `application`.
    public init(cluster: RayCluster, application: String, key: ServiceKey? = nil) async throws {
        var endpoint = try await cluster.serveEndpoint(for: application)
        if let key { endpoint.key = key }
        self.init(cluster: cluster, endpoint: endpoint)
    }

    /// Detects objects in one encoded image (JPEG, PNG, WebP or BMP bytes).
    /// - Throws: ``DetectionError`` for an image the service refuses (e.g. `decode_failed`) or a service
    ///   that kept failing.
    public func detect(_ image: Data, options: DetectionOptions = DetectionOptions()) async throws -> DetectionResult {
        let response = try await post("/detect" + options.query, body: image)
        switch response.status {
        case 200: return try decodeResult(response.body)
        default: throw serverError(response)
        }
    }

    /// Detects objects in several images with one request: one result or error per image, in order.
    public func detect(batch images: [Data], options: DetectionOptions = DetectionOptions()) async throws
        -> [Result<DetectionResult, DetectionError>]
    {
        var body = Data()
        for image in images {
            withUnsafeBytes(of: UInt32(image.count).bigEndian) { body.append(contentsOf: $0) }
            body.append(image)
        }
        let response = try await post("/detect/batch" + options.query, body: body)
        guard response.status == 200 else { throw serverError(response) }
        struct Answer: Decodable { var results: [BatchItem] }
        do {
            return try JSONDecoder().decode(Answer.self, from: response.body).results.map(\.result)
        } catch {
            throw DetectionError(
                .badResponse, "unexpected answer: \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
    }

    /// One item of a `/detect/batch` answer, decoded once: the image's named error, else its result.
    private struct BatchItem: Decodable {
        var result: Result<DetectionResult, DetectionError>

        init(from decoder: any Decoder) throws {
            if let failure = try? DetectionError.Answer(from: decoder) {
                result = .failure(failure.error)
            } else {
                result = .success(try DetectionResult(from: decoder))
            }
        }
    }

    /// Results for many inputs, in input order, with at most `concurrency` requests of up to
    /// `imagesPerRequest` images each in flight: files are read and sent only when a slot frees up and the
    /// consumer asks for more, so memory stays bounded however many inputs there are. Every input yields
    /// exactly one element, with the caller's own input value: a result or an error.
    ///
    /// Several images per request (`/detect/batch`) cost the Serve proxy and the service one request
    /// instead of several, and arrive at the dynamic batcher together. Default 1.
    /// - Parameters:
    ///   - inputs: the caller's inputs, handed back with their results.
    ///   - file: the image file of an input.
    public func results<Input: Sendable>(
        for inputs: [Input], file: @escaping @Sendable (Input) -> URL, concurrency: Int = 8, imagesPerRequest: Int = 1,
        options: DetectionOptions = DetectionOptions()
    ) -> DetectionResults<Input> {
        DetectionResults(
            client: self, inputs: inputs, file: file, concurrency: max(concurrency, 1),
            imagesPerRequest: max(imagesPerRequest, 1), options: options)
    }

    /// ``results(for:file:concurrency:imagesPerRequest:options:)`` for files.
    public func results(
        for files: [URL], concurrency: Int = 8, imagesPerRequest: Int = 1,
        options: DetectionOptions = DetectionOptions()
    ) -> DetectionResults<URL> {
        results(
            for: files, file: { $0 }, concurrency: concurrency, imagesPerRequest: imagesPerRequest, options: options)
    }

    /// Several files' results with one request, never throwing: a file that cannot be read, an image the
    /// service refuses, or a failed request becomes that file's error. Each file is shrunk as it is read when
    /// ``maxSide`` says so, and its answer mapped back to the file's pixels.
    public func detect(files: [URL], options: DetectionOptions = DetectionOptions()) async
        -> [Result<DetectionResult, DetectionError>]
    {
        if files.count == 1 { return [await detect(file: files[0], options: options)] }
        var results = [Result<DetectionResult, DetectionError>?](repeating: nil, count: files.count)
        var sent: [(index: Int, image: DownscaledImage)] = []
        for (index, file) in files.enumerated() {
            if let image = read(file) {
                sent.append((index, image))
            } else {
                results[index] = .failure(DetectionError(.unreadable, "cannot read \(file.path)"))
            }
        }
        if !sent.isEmpty {
            do {
                let answers = try await detect(batch: sent.map(\.image.data), options: options)
                for (item, answer) in zip(sent, answers) {
                    // The request's decoded-memory budget was spent by the images before it: alone it fits.
                    if case .failure(let error) = answer, error.code == .overBudget {
                        do {
                            results[item.index] = .success(
                                try await detect(item.image.data, options: options).mapped(toOriginalOf: item.image))
                        } catch let error as DetectionError {
                            results[item.index] = .failure(error)
                        } catch {
                            results[item.index] = .failure(DetectionError(transport: error))
                        }
                    } else {
                        results[item.index] = answer.map { $0.mapped(toOriginalOf: item.image) }
                    }
                }
            } catch {
                let failure = DetectionError(transport: error)
                for item in sent { results[item.index] = .failure(failure) }
            }
        }
        return results.map { $0 ?? .failure(DetectionError(.badResponse, "the service returned too few results")) }
    }

    /// One file's result, never throwing: a local read failure or a service error becomes the error. The file is
    /// shrunk as it is read when ``maxSide`` says so, and its answer mapped back to the file's pixels.
    public func detect(file: URL, options: DetectionOptions = DetectionOptions()) async
        -> Result<DetectionResult, DetectionError>
    {
        guard let image = read(file) else {
            return .failure(DetectionError(.unreadable, "cannot read \(file.path)"))
        }
        do {
            return .success(try await detect(image.data, options: options).mapped(toOriginalOf: image))
        } catch {
            return .failure(DetectionError(transport: error))
        }
    }

    /// A file's bytes as they are to be sent (shrunk per ``maxSide``; only the shrunk copy is kept); nil when the
    /// file cannot be read.
    private func read(_ file: URL) -> DownscaledImage? {
        FileManager.default.contents(atPath: file.path).map { DownscaledImage.make($0, maxSide: maxSide) }
    }

    /// The service's `/models` answer.
    public func models() async throws -> JSONValue {
        let response = try await cluster.send(.GET, to: endpoint, "/models")
        guard response.status == 200 else { throw serverError(response) }
        return try JSONDecoder().decode(JSONValue.self, from: response.body)
    }

    /// The served model's input size (`imgsz`, what it letterboxes every image to), from the service's `/models`.
    /// - Throws: ``DetectionError`` (`badResponse`) when the answer names no size; the errors of ``models()``.
    public func modelImageSize() async throws -> Int {
        let answer = try await models()
        guard case .array(let models)? = answer["models"], let size = models.first?["imgsz"]?.doubleValue,
            (1...1_000_000).contains(size), size == size.rounded()
        else {
            throw DetectionError(.badResponse, "the service's /models answer names no input size (imgsz)")
        }
        return Int(size)
    }

    /// The pixels `maxSide` stands for with this client's service: ``MaxSide/auto`` is ``modelImageSize()``,
    /// ``MaxSide/off`` nil.
    /// - Throws: the errors of ``modelImageSize()`` for ``MaxSide/auto``.
    public func pixels(for maxSide: MaxSide) async throws -> Int? {
        switch maxSide {
        case .off: nil
        case .pixels(let pixels): pixels
        case .auto: try await modelImageSize()
        }
    }

    // MARK: -

    /// POSTs `body`, sending it again as ``retryPolicy`` says; returns the last answer.
    /// - Throws: ``DetectionError`` (`responseTooLarge`), ``ClusterError`` (`unreachable` after the last try),
    ///   `CancellationError`.
    private func post(_ path: String, body: Data) async throws -> RayCluster.Response {
        var attempt = 1
        var shedWaited = Duration.zero
        let attempts = endpointDown.withLock { $0 } ? 1 : retryPolicy.attempts
        while true {
            let delay: Duration
            do {
                let response: RayCluster.Response
                do {
                    response = try await cluster.send(
                        .POST, to: endpoint, path, body: body, contentType: "application/octet-stream",
                        timeout: .seconds(300))
                    endpointDown.withLock { $0 = false }
                } catch let error as ClusterError where error.code == .unreachable && attempt >= attempts {
                    let refused = error.underlying.map { ConnectionFailure($0) == .refused } ?? false
                    if refused { endpointDown.withLock { $0 = true } }
                    let tries =
                        attempts < retryPolicy.attempts
                        ? "; tried once, as the request before found nothing listening there either"
                        : attempt > 1 ? "; tried \(attempt) times" : ""
                    throw ClusterError(
                        error.code, error.message + tries, remedy: error.remedy, underlying: error.underlying)
                }
                guard let wait = retryPolicy.delay(after: response, attempt: attempt) else { return response }
                let shed = response.status == 503 || response.status == 429
                guard attempt < retryPolicy.attempts || (shed && shedWaited + wait <= retryPolicy.maxShedWait) else {
                    return response
                }
                if shed { shedWaited += wait }
                delay = wait
                cluster.logger.debug("POST \(path): HTTP \(response.status), try \(attempt + 1) in \(delay)")
            } catch let error as ClusterError where error.code == .responseTooLarge {
                throw DetectionError(transport: error)
            } catch let error as ClusterError where error.code == .unreachable && attempt < attempts {
                delay = retryPolicy.backoff(attempt: attempt)
                cluster.logger.debug("POST \(path): \(error.message), try \(attempt + 1) in \(delay)")
            }
            attempt += 1
            try await Task.sleep(for: delay)
        }
    }

    private func decodeResult(_ data: Data) throws -> DetectionResult {
        do {
            return try JSONDecoder().decode(DetectionResult.self, from: data)
        } catch {
            throw DetectionError(
                .badResponse, "unexpected answer: \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
    }

    private func serverError(_ response: RayCluster.Response) -> DetectionError {
        if var error = try? JSONDecoder().decode(DetectionError.Answer.self, from: response.body).error {
            if error.code == .unauthorized { error.message += " (sent: \(endpoint.key?.description ?? "no key"))" }
            return error
        }
        return DetectionError(.unavailable, "HTTP \(response.status): \(RayMessage.extract(from: response.text))")
    }
}

/// The results of ``DetectionClient/results(for:file:concurrency:imagesPerRequest:options:)``: an
/// `AsyncSequence` of `(input, result)` in input order, the input being the caller's own value. Single-pass.
public struct DetectionResults<Input: Sendable>: AsyncSequence, Sendable {
    public typealias Element = (input: Input, result: Result<DetectionResult, DetectionError>)

    let client: DetectionClient
    let inputs: [Input]
    let file: @Sendable (Input) -> URL
    let concurrency: Int
    let imagesPerRequest: Int
    let options: DetectionOptions

    public func makeAsyncIterator() -> Iterator {
        Iterator(source: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let source: DetectionResults
        /// One task per request in flight, oldest first; each answers for its inputs in order.
        var pending: [Task<[Element], Never>] = []
        /// The oldest request's answers not yet handed out.
        var ready: ArraySlice<Element> = []
        var nextIndex = 0

        public mutating func next() async -> Element? {
            while true {
                if let element = ready.popFirst() { return element }
                while pending.count < source.concurrency && nextIndex < source.inputs.count {
                    let end = Swift.min(nextIndex + source.imagesPerRequest, source.inputs.count)
                    let chunk = Array(source.inputs[nextIndex..<end])
                    let (client, options, file) = (source.client, source.options, source.file)
                    nextIndex = end
                    pending.append(
                        Task {
                            let results = await client.detect(files: chunk.map(file), options: options)
                            return zip(chunk, results).map { (input: $0, result: $1) }
                        })
                }
                guard !pending.isEmpty else { return nil }
                let oldest = pending.removeFirst()
                let rest = pending
                ready = await withTaskCancellationHandler {
                    await oldest.value[...]
                } onCancel: {
                    oldest.cancel()
                    rest.forEach { $0.cancel() }
                }
            }
        }
    }
}
