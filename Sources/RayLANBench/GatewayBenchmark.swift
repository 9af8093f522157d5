import Foundation
import RayLAN

/// The gateway's speed next to Ray Client's, in one run on the same cluster (`raylan bench --gateway`): no-op
/// calls at 1 and 32 in flight (latency p50/p99, calls/s), and put and get MB/s at 1 MB and 100 MB.
///
/// The gateway side calls `builtins:tuple` (returns an empty list) with Ray's default of 1 CPU; Ray Client's side
/// (`cluster/raylan_bench/ray_client.py`, run with a local Python that has Ray) calls a function returning `()`
/// with the same default.
public struct GatewayBenchmark: Sendable {
    public struct Configuration: Sendable {
        /// Seconds per call measurement (transfers get half). Default 10.
        public var duration: Duration
        /// The in-flight level besides 1. Default 32.
        public var inFlight: Int
        /// Object sizes in bytes. Default 1 MB and 100 MB.
        public var sizes: [Int]
        /// How to run Ray Client's side; nil skips it.
        public var rayClient: RayClientSide?

        public init(
            duration: Duration = .seconds(10), inFlight: Int = 32, sizes: [Int] = [1_000_000, 100_000_000],
            rayClient: RayClientSide? = nil
        ) {
            self.duration = duration
            self.inFlight = inFlight
            self.sizes = sizes
            self.rayClient = rayClient
        }
    }

    /// A Python with Ray on this machine, and how it reaches the cluster with Ray Client.
    public struct RayClientSide: Sendable {
        /// The Python (same Ray version as the cluster).
        public var python: String
        /// `--address ray://HOST:PORT` (Ray Client's proxy) or `--gcs HOST:PORT` (start Ray Client's server for one
        /// client here, without the proxy's hop).
        public var target: [String]
        /// Extra environment (`RAY_AUTH_TOKEN` for a cluster with token authentication).
        public var environment: [String: String]

        public init(python: String, target: [String], environment: [String: String] = [:]) {
            self.python = python
            self.target = target
            self.environment = environment
        }
    }

    /// One side's figures.
    public struct Side: Sendable, Codable {
        public struct Calls: Sendable, Codable {
            public var inFlight: Int
            public var calls: Int
            public var seconds: Double
            public var callsPerSecond: Double
            public var p50Ms: Double
            public var p99Ms: Double

            enum CodingKeys: String, CodingKey {
                case inFlight = "in_flight", calls, seconds, callsPerSecond = "calls_per_second", p50Ms = "p50_ms"
                case p99Ms = "p99_ms"
            }
        }

        public struct Transfer: Sendable, Codable {
            public var bytes: Int
            public var rounds: Int
            public var putMBPerSecond: Double
            public var getMBPerSecond: Double

            enum CodingKeys: String, CodingKey {
                case bytes, rounds, putMBPerSecond = "put_mb_per_second", getMBPerSecond = "get_mb_per_second"
            }
        }

        public var calls: [Calls]
        public var transfers: [Transfer]
        /// For Ray Client: `proxy` or `specific-server`.
        public var via: String?
    }

    /// Both sides and the targets' verdicts.
    public struct Report: Sendable, Codable {
        public var rayVersion: String
        public var date: String
        public var gateway: Side
        public var rayClient: Side?
        /// Why Ray Client's side is missing.
        public var rayClientSkipped: String?

        /// Each target: its name, the ratio measured, the bound, and whether it holds.
        public var targets: [Target] {
            guard let rayClient else { return [] }
            var targets: [Target] = []
            func pair(_ inFlight: Int) -> (Side.Calls, Side.Calls)? {
                guard let ours = gateway.calls.first(where: { $0.inFlight == inFlight }),
                    let theirs = rayClient.calls.first(where: { $0.inFlight == inFlight })
                else { return nil }
                return (ours, theirs)
            }
            if let (ours, theirs) = pair(1) {
                targets.append(
                    Target(
                        name: "no-op p50 latency, gateway ÷ Ray Client", ratio: ours.p50Ms / theirs.p50Ms, bound: "≤ 2",
                        holds: ours.p50Ms <= 2 * theirs.p50Ms))
            }
            if let highest = gateway.calls.map(\.inFlight).max(), highest > 1, let (ours, theirs) = pair(highest) {
                targets.append(
                    Target(
                        name: "calls/s at \(highest) in flight, gateway ÷ Ray Client",
                        ratio: ours.callsPerSecond / theirs.callsPerSecond, bound: "≥ 1",
                        holds: ours.callsPerSecond >= theirs.callsPerSecond))
            }
            for ours in gateway.transfers {
                guard let theirs = rayClient.transfers.first(where: { $0.bytes == ours.bytes }) else { continue }
                let size = GatewayBenchmark.megabytes(ours.bytes)
                targets.append(
                    Target(
                        name: "put MB/s at \(size), gateway ÷ Ray Client",
                        ratio: ours.putMBPerSecond / theirs.putMBPerSecond, bound: "≥ 0.5",
                        holds: ours.putMBPerSecond >= 0.5 * theirs.putMBPerSecond))
                targets.append(
                    Target(
                        name: "get MB/s at \(size), gateway ÷ Ray Client",
                        ratio: ours.getMBPerSecond / theirs.getMBPerSecond, bound: "≥ 0.5",
                        holds: ours.getMBPerSecond >= 0.5 * theirs.getMBPerSecond))
            }
            return targets
        }

        public struct Target: Sendable, Codable {
            public var name: String
            public var ratio: Double
            public var bound: String
            public var holds: Bool
        }
    }

    public let gateway: Gateway
    public let configuration: Configuration

    /// `1 MB`, `100 MB`: sizes in the 10^6 bytes MB/s is counted in.
    public static func megabytes(_ bytes: Int) -> String { String(format: "%g MB", Double(bytes) / 1e6) }

    public init(gateway: Gateway, configuration: Configuration = Configuration()) {
        self.gateway = gateway
        self.configuration = configuration
    }

    /// Measures the gateway, then Ray Client (when configured), and reports both.
    /// - Throws: ``BenchError`` when every call failed, ``GatewayError``, ``ClusterError``.
    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let info = try await gateway.cluster.serverInfo()
        let _: JSONValue = try await gateway.call("builtins:tuple")  // a worker is up
        var calls: [Side.Calls] = []
        for inFlight in [1, configuration.inFlight] {
            progress("Gateway: no-op calls, \(inFlight) in flight, \(configuration.duration)…")
            calls.append(try await measureCalls(inFlight: inFlight))
        }
        var transfers: [Side.Transfer] = []
        for size in configuration.sizes {
            progress("Gateway: put and get of \(Self.megabytes(size))…")
            transfers.append(try await measureTransfer(bytes: size))
        }
        var report = Report(
            rayVersion: info.rayVersion.description, date: ISO8601DateFormatter().string(from: Date()),
            gateway: Side(calls: calls, transfers: transfers))
        if let side = configuration.rayClient {
            progress("Ray Client from Python: the same measurements…")
            do {
                report.rayClient = try await measureRayClient(side)
            } catch {
                report.rayClientSkipped = "\(error)"
            }
        } else {
            report.rayClientSkipped = "no local Python with Ray to run Ray Client from"
        }
        return report
    }

    func measureCalls(inFlight: Int) async throws -> Side.Calls {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: configuration.duration)
        let gateway = self.gateway
        let (latencies, firstError) = await withTaskGroup(of: ([Double], (any Error)?).self) { group in
            for _ in 0..<inFlight {
                group.addTask {
                    var latencies: [Double] = []
                    var firstError: (any Error)?
                    while clock.now < deadline {
                        let sent = clock.now
                        do {
                            let _: JSONValue = try await gateway.call("builtins:tuple")
                            latencies.append(sent.duration(to: clock.now).seconds * 1000)
                        } catch {
                            firstError = firstError ?? error
                        }
                    }
                    return (latencies, firstError)
                }
            }
            var all: ([Double], (any Error)?) = ([], nil)
            for await part in group { all = (all.0 + part.0, all.1 ?? part.1) }
            return all
        }
        let seconds = start.duration(to: clock.now).seconds
        if latencies.isEmpty, let firstError {
            throw BenchError.everyRequestFailed(concurrency: inFlight, imagesPerRequest: 1, first: firstError)
        }
        let sorted = latencies.sorted()
        return Side.Calls(
            inFlight: inFlight, calls: sorted.count, seconds: seconds, callsPerSecond: Double(sorted.count) / seconds,
            p50Ms: sorted.percentile(0.5), p99Ms: sorted.percentile(0.99))
    }

    func measureTransfer(bytes: Int) async throws -> Side.Transfer {
        var generator = SystemRandomNumberGenerator()
        var data = Data(count: bytes)
        data.withUnsafeMutableBytes { buffer in
            for index in buffer.indices { buffer[index] = UInt8.random(in: 0...255, using: &generator) }
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: configuration.duration / 2)
        var (put, get, rounds) = (Duration.zero, Duration.zero, 0)
        while rounds < 3 || clock.now < deadline {
            let begin = clock.now
            let ref = try await gateway.put(data)
            let middle = clock.now
            let back = try await gateway.get(ref)
            let end = clock.now
            guard back.count == bytes else {
                throw GatewayError(.badResponse, "get returned \(back.count) bytes of the \(bytes) put")
            }
            try await gateway.free(ref)
            put += begin.duration(to: middle)
            get += middle.duration(to: end)
            rounds += 1
        }
        let total = Double(bytes * rounds) / 1e6
        return Side.Transfer(
            bytes: bytes, rounds: rounds, putMBPerSecond: total / put.seconds, getMBPerSecond: total / get.seconds)
    }

    func measureRayClient(_ side: RayClientSide) async throws -> Side {
        let code = try ClusterCode.locate()
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = code.directory.path
        for (key, value) in side.environment { environment[key] = value }
        let arguments =
            [side.python, "-m", "raylan_bench.ray_client"] + side.target + [
                "--duration", String(configuration.duration.seconds), "--in-flight", String(configuration.inFlight),
                "--sizes", configuration.sizes.map(String.init).joined(separator: ","),
            ]
        let captured = try await ProcessGroup.capture(
            arguments, environment: environment, timeout: configuration.duration * 6 + .seconds(180))
        guard let line = captured.output.split(separator: "\n").last(where: { $0.hasPrefix("RAYLAN_BENCH ") }) else {
            throw BenchError(
                .referenceFailed,
                "Ray Client's measurement printed no result (exit \(captured.status.map(String.init) ?? "killed")): "
                    + String(captured.output.suffix(600)))
        }
        return try JSONDecoder().decode(Side.self, from: Data(line.dropFirst("RAYLAN_BENCH ".count).utf8))
    }
}
