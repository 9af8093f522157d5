#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import Foundation
import NIOHTTP1
import RayLANTesting
import Testing

@testable import RayLANCore
@testable import RayLANDetection
@testable import RayLANGateway
@testable import RayLANLocal

/// The HTTP client against servers that misbehave: a fake Python server plays each (nothing here is Ray).
@Suite("The HTTP client: read timeout, size cap and retries")
struct HTTPClientTests {
    static let result = """
        {"model": "m", "image": {"width": 4, "height": 3, "format": "jpeg"}, "detections": [],
         "batch_size": 1, "timings_ms": {"total": 1.0}}
        """

    /// A detection client for the application `/raylan/m` on the fake server.
    static func client(_ cluster: RayCluster, _ server: FakeHTTPServer) -> DetectionClient {
        let endpoint = ServeEndpoint(address: server.address, port: server.port, routePrefix: "/raylan/m")
        var client = DetectionClient(cluster: cluster, endpoint: endpoint)
        client.retryPolicy.initialBackoff = .milliseconds(50)
        return client
    }

    @Test("A body that stalls after the head ends with a timeout naming the stall, not a hang")
    func stalledBody() async throws {
        let plan = [FakeHTTPServer.Answer(status: 200, body: "{\"par", contentLength: 1000, stall: true)]
        try await FakeHTTPServer.with(plan) { server in
            let configuration = RayCluster.Configuration(timeouts: .init(read: .seconds(1)))
            try await RayCluster.withConnection(to: server.address, configuration: configuration) { cluster in
                let pid = server.process.pid
                let error = try await withTimeLimit(.seconds(30), onTimeout: { kill(pid, SIGKILL) }) {
                    await #expect(throws: ClusterError.self) { try await cluster.send(.GET, "/api/version") }
                }
                #expect(error?.code == .unreachable)
                let underlying = try #require(error?.underlying)
                #expect(ConnectionFailure(underlying) == .stalled, "\(underlying)")
                #expect(error?.description.contains("nothing received for 1.0 seconds") == true, "\(error!)")
            }
        }
    }

    @Test(
        "An answer over the cap is its own error, and the request is not sent again",
        arguments: [
            FakeHTTPServer.Answer(status: 200, contentLength: 80 << 20),  // announced by Content-Length
            FakeHTTPServer.Answer(status: 200, streamedBytes: 80 << 20),  // found while reading
        ])
    func tooLarge(_ answer: FakeHTTPServer.Answer) async throws {
        try await FakeHTTPServer.with([answer]) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                let client = Self.client(cluster, server)
                let result = await client.detect(file: try Self.image())
                guard case .failure(let error) = result else {
                    Issue.record("expected a failure, got \(result)")
                    return
                }
                #expect(error.code == .responseTooLarge, "\(error)")
                #expect(server.requests.count == 1)

                let direct = await #expect(throws: ClusterError.self) {
                    try await cluster.send(.GET, "/api/version", maxResponseBytes: 1 << 20)
                }
                #expect(direct?.code == .responseTooLarge)
            }
        }
    }

    @Test("503 with Retry-After: 1, then 200: answered, the second request at least 1 s after the first")
    func retryAfter() async throws {
        let plan = [
            FakeHTTPServer.Answer(status: 503, headers: ["Retry-After": "1"], body: "busy"),
            FakeHTTPServer.Answer(status: 200, headers: ["Content-Type": "application/json"], body: Self.result),
        ]
        try await FakeHTTPServer.with(plan) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                let result = try await Self.client(cluster, server).detect(Data([0xFF, 0xD8]))
                #expect(result.model == "m")
                let requests = server.requests
                try #require(requests.count == 2)
                #expect(requests[1].t >= requests[0].t + 1.0, "\(requests.map(\.t))")
            }
        }
    }

    @Test("A shed request (503) is sent again past the tries while the shed-wait lasts; a 502 is not")
    func shedPastAttempts() async throws {
        let answers =
            Array(repeating: FakeHTTPServer.Answer(status: 503, headers: ["Retry-After": "0"], body: "busy"), count: 4)
            + [FakeHTTPServer.Answer(status: 200, headers: ["Content-Type": "application/json"], body: Self.result)]
        try await FakeHTTPServer.with(answers) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                var client = Self.client(cluster, server)
                client.retryPolicy.attempts = 2
                client.retryPolicy.maxShedWait = .seconds(30)
                let result = try await client.detect(Data([0xFF, 0xD8]))
                #expect(result.model == "m")
                #expect(server.requests.count == 5)
            }
        }
        let gateway =
            Array(repeating: FakeHTTPServer.Answer(status: 502, body: "bad gateway"), count: 4)
            + [FakeHTTPServer.Answer(status: 200, headers: ["Content-Type": "application/json"], body: Self.result)]
        try await FakeHTTPServer.with(gateway) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                var client = Self.client(cluster, server)
                client.retryPolicy.attempts = 2
                client.retryPolicy.initialBackoff = .milliseconds(10)
                await #expect(throws: DetectionError.self) { _ = try await client.detect(Data([0xFF, 0xD8])) }
                #expect(server.requests.count == 2)
            }
        }
    }

    @Test(
        "Retried until answered: 429, 408, a bare 500 (a replica that died), 502, 504",
        arguments: [429, 408, 500, 502, 504])
    func retried(_ status: Int) async throws {
        let plan = [
            FakeHTTPServer.Answer(status: status, body: "Internal Server Error"),
            FakeHTTPServer.Answer(status: 200, body: Self.result),
        ]
        try await FakeHTTPServer.with(plan) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                let result = try await Self.client(cluster, server).detect(Data([0xFF, 0xD8]))
                #expect(result.model == "m")
                #expect(server.requests.count == 2)
            }
        }
    }

    @Test(
        "The service's own refusals (its error JSON) are final: one request, its code",
        arguments: [400, 401, 413, 422, 500])
    func notRetried(_ status: Int) async throws {
        let body = #"{"error": {"code": "bad_request", "message": "conf=high is not a number"}}"#
        try await FakeHTTPServer.with([FakeHTTPServer.Answer(status: status, body: body)]) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                let error = await #expect(throws: DetectionError.self) {
                    try await Self.client(cluster, server).detect(Data([0xFF, 0xD8]))
                }
                #expect(error?.code == .badRequest)
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test(
        "An endpoint that refuses connections: a request spends its tries, the next is tried once, and after an answer every try is spent again"
    )
    func refusedEndpoint() async throws {
        // A port nothing listens on (until the fake server takes it for the middle step), held so that no other
        // test's server takes it in between.
        var closed: ClosedPort? = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }
        let port = try #require(closed).port
        let address = ClusterAddress(host: "127.0.0.1", port: port)
        try await RayCluster.withConnection(to: address) { cluster in
            var client = DetectionClient(
                cluster: cluster, endpoint: ServeEndpoint(address: address, port: port, routePrefix: "/raylan/m"))
            client.retryPolicy.initialBackoff = .milliseconds(10)
            let detector = client
            func failure() async -> String {
                do {
                    _ = try await detector.detect(Data([0xFF, 0xD8]))
                    return "answered"
                } catch {
                    return "\(error)"
                }
            }
            let first = await failure()
            #expect(first.contains("connection refused") && first.contains("tried 5 times"), "\(first)")
            let second = await failure()
            #expect(second.contains("connection refused") && second.contains("tried once"), "\(second)")
            let answer = FakeHTTPServer.Answer(
                status: 200, headers: ["Content-Type": "application/json"], body: Self.result)
            closed = nil
            try await FakeHTTPServer.with([answer], port: port) { server in
                _ = try await detector.detect(Data([0xFF, 0xD8]))
                #expect(server.requests.count == 1)
            }
            closed = try ClosedPort(port)
            let third = await failure()
            #expect(third.contains("connection refused") && third.contains("tried 5 times"), "\(third)")
        }
    }

    @Test(
        "More requests than connections, to a slow server: each waits its turn, past the connect timeout, and all are answered"
    )
    func moreRequestsThanConnections() async throws {
        // Each answer takes 1 s, twice the connect timeout; 2 connections for 6 requests. AsyncHTTPClient's own
        // queue would fail the waiting requests once they had waited for the connect timeout.
        let answer = FakeHTTPServer.Answer(status: 200, body: "{}", delay: 1)
        try await FakeHTTPServer.with([answer]) { server in
            let configuration = RayCluster.Configuration(
                timeouts: .init(connect: .milliseconds(500)), requestsInFlightPerServer: 2)
            try await RayCluster.withConnection(to: server.address, configuration: configuration) { cluster in
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<6 { group.addTask { try await cluster.send(.GET, "/api/version").status } }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses == Array(repeating: 200, count: 6))
                let requests = server.requests
                #expect(requests.count == 6)
                #expect(requests.map(\.inFlight).max() == 2, "\(requests.map(\.inFlight))")
            }
        }
    }

    @Test("A request waiting for its turn ends when its task is cancelled, and never takes a turn")
    func cancelledWhileWaiting() async throws {
        let turns = InFlightLimit(1)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let (enteredSignal, entered) = AsyncStream.makeStream(of: Void.self)
        let ran = LockedBox<[String]>([])
        let holder = Task {
            try await turns.withTurn {
                entered.yield()
                for await _ in released { break }
                ran.withLock { $0.append("holder") }
            }
        }
        for await _ in enteredSignal { break }
        let waiter = Task {
            try await turns.withTurn { ran.withLock { $0.append("waiter") } }
        }
        while turns.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(turns.waiting == 0)
        release.yield()
        try await holder.value
        // The turn is free again: a new request takes it at once.
        try await turns.withTurn { ran.withLock { $0.append("next") } }
        #expect(ran.withLock { $0 } == ["holder", "next"])
    }

    @Test("A service that keeps answering 503 ends named after the configured tries and shed-wait")
    func exhausted() async throws {
        try await FakeHTTPServer.with([FakeHTTPServer.Answer(status: 503, body: "busy")]) { server in
            try await RayCluster.withConnection(to: server.address) { cluster in
                var client = Self.client(cluster, server)
                client.retryPolicy.attempts = 3
                client.retryPolicy.maxShedWait = .zero
                let result = await client.detect(file: try Self.image())
                guard case .failure(let error) = result else {
                    Issue.record("expected a failure, got \(result)")
                    return
                }
                #expect(error.code == .unavailable)
                #expect(server.requests.count == 3)
            }
        }
    }

    @Test("Retry-After: seconds, an HTTP date, nonsense; a long one is capped")
    func retryAfterValues() {
        let now = Date(timeIntervalSince1970: 1_445_412_470)  // Wed, 21 Oct 2015 07:27:50 GMT
        #expect(DetectionClient.RetryPolicy.retryAfter("2", now: now) == .seconds(2))
        #expect(DetectionClient.RetryPolicy.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now: now) == .seconds(10))
        #expect(DetectionClient.RetryPolicy.retryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now: now) == .zero)
        #expect(DetectionClient.RetryPolicy.retryAfter("soon", now: now) == nil)
        let policy = DetectionClient.RetryPolicy()
        var response = RayCluster.Response(status: 503, body: Data())
        response.headers.add(name: "Retry-After", value: "3600")
        #expect(policy.delay(after: response, attempt: 1, now: now) == .seconds(30))
    }

    /// A file to send (the fake server does not look at it): one of the samples, so that nothing is left behind.
    static func image() throws -> URL {
        TestEnvironment.packageRoot.appendingPathComponent("samples/shapes_00.jpg")
    }
}
