import Foundation
import RayLAN

extension Benchmark {
    /// Anonymous POSTs of `image` (no service key) to `endpoint`'s `/detect` at `rate` per second for
    /// `duration`: at most `rate × duration` requests, at most 64 in flight (a request that would pass that
    /// waits), each with a 10 s timeout. Bounded in count and time; traffic goes only to the service's own
    /// address.
    ///
    /// - Returns: the requests sent, how many were answered 401 (refused for want of a key), and how many were
    ///   served (answered 2xx: none should be). The rest failed otherwise (shed with 503, timed out).
    static func flood(
        _ cluster: RayCluster, endpoint: ServeEndpoint, image: Data, rate: Int, duration: Duration
    ) async -> (sent: Int, unauthorized: Int, served: Int) {
        let clock = ContinuousClock()
        let start = clock.now
        let total = max(0, Int(Double(rate) * duration.seconds))
        let interval = Duration.seconds(1.0 / Double(max(rate, 1)))
        return await withTaskGroup(of: Int?.self) { group in
            var sent = 0
            var unauthorized = 0
            var served = 0
            var inFlight = 0
            func count(_ status: Int?) {
                if status == 401 { unauthorized += 1 }
                if let status, (200..<300).contains(status) { served += 1 }
            }
            for index in 0..<total where !Task.isCancelled {
                let due = start.advanced(by: interval * index)
                if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
                if inFlight >= 64, let status = await group.next() {
                    inFlight -= 1
                    count(status)
                }
                group.addTask {
                    let response = try? await cluster.send(
                        .POST, to: endpoint, "/detect", body: image, contentType: "application/octet-stream",
                        timeout: .seconds(10), maxResponseBytes: 1 << 16)
                    return response?.status
                }
                inFlight += 1
                sent += 1
            }
            for await status in group { count(status) }
            return (sent, unauthorized, served)
        }
    }
}
