import Foundation

extension RayCluster {
    /// Submits `spec` (one of RayLAN's own cluster-side jobs), waits for it, and decodes the JSON of the
    /// last log line that starts with `marker` and a space. The job is stopped when the wait times out.
    ///
    /// - Throws: ``JobError`` (`rejected`) naming the job when it did not succeed or printed no result.
    package func runForResult<Result: Decodable>(_ spec: JobSpec, marker: String, timeout: Duration) async throws
        -> Result
    {
        let id = try await submit(spec).submissionID
        let info: JobInfo
        do {
            info = try await waitForCompletion(of: id, timeout: timeout)
        } catch {
            _ = try? await stopJob(id)
            throw error
        }
        let log = try await logs(of: id)
        let prefix = marker + " "
        guard info.status == .succeeded, let line = log.split(separator: "\n").last(where: { $0.hasPrefix(prefix) })
        else {
            throw JobError(
                .rejected, "The job '\(spec.entrypoint)' ended \(info.status): \(info.message ?? "")",
                remedy: "See 'raylan job logs \(id)'.")
        }
        return try JSONDecoder().decode(Result.self, from: Data(line.dropFirst(prefix.count).utf8))
    }
}
