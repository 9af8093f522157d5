import Foundation

extension Benchmark {
    /// Anonymous POSTs of `image` (no service key) to `endpoint`'s `/detect` at `rate` per second for
    /// `duration`: at most `rate × duration` requests, at most 64 in flight (a request that would pass that
    /// waits), each with a 10 s timeout. Bounded in count and time; traffic goes only to the service's own
    /// address.
    ///
    /// - Returns: the requests sent, and how many were answered 401 (refused for want of a key).
    static func flood(
        _ cluster: RayCluster, endpoint: ServeEndpoint, image: Data, rate: Int, duration: Duration
    ) async -> (sent: Int, unauthorized: Int) {
        let clock = ContinuousClock()
        let start = clock.now
        let total = max(0, Int(Double(rate) * duration.seconds))
        let interval = Duration.seconds(1.0 / Double(max(rate, 1)))
        return await withTaskGroup(of: Bool.self) { group in
            var sent = 0
            var unauthorized = 0
            var inFlight = 0
            for index in 0..<total {
                let due = start.advanced(by: interval * index)
                if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
                if inFlight >= 64, let refused = await group.next() {
                    inFlight -= 1
                    if refused { unauthorized += 1 }
                }
                group.addTask {
                    let response = try? await cluster.send(
                        .POST, to: endpoint, "/detect", body: image, contentType: "application/octet-stream",
                        timeout: .seconds(10), maxResponseBytes: 1 << 16)
                    return response?.status == 401
                }
                inFlight += 1
                sent += 1
            }
            for await refused in group where refused { unauthorized += 1 }
            return (sent, unauthorized)
        }
    }
}
