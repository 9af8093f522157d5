import Foundation
import Logging
import NIOHTTP1

/// What ``RayCluster/submit(_:)`` returns.
public struct JobSubmission: Sendable, Hashable, Codable {
    /// The submission id to follow the job with.
    public var submissionID: String
    /// The uploaded working directory, when the spec had one.
    public var workingDirectory: PackageUpload?
}

extension RayCluster {
    /// Submits a job: validates the spec, uploads the working directory when needed, and POSTs
    /// `/api/jobs/` with only the fields the cluster's Ray version knows.
    ///
    /// The POST always carries a submission id (the spec's, or a new ``JobSpec/makeSubmissionID()``), so when
    /// its answer is lost (connection closed, timed out) it is sent once more: Ray refuses a second job with
    /// the same id, and an "already exists" for a job with this spec's entrypoint means the first POST went
    /// through, which is a success.
    ///
    /// - Returns: the submission id and what was uploaded.
    /// - Throws: ``JobError`` (`invalidSpec` before any traffic, `alreadyExists`, `rejected`),
    ///   ``PackageError``, ``ClusterError``.
    public func submit(_ spec: JobSpec) async throws -> JobSubmission {
        try spec.validate()
        var spec = spec
        let id = spec.submissionID ?? JobSpec.makeSubmissionID()
        spec.submissionID = id
        let package = try spec.workingDirectory.map {
            try WorkingDirectoryPackage.scan($0, options: spec.packageOptions)
        }
        let info = try await serverInfo()

        var upload: PackageUpload?
        if let package {
            upload = try await uploadIfNeeded(package, options: spec.packageOptions)
        }
        let body = try JSONSerialization.data(
            withJSONObject: Self.submitBody(spec, workingDirectoryURI: upload?.uri, version: info.rayVersion),
            options: [.sortedKeys])

        // Right after start-up the head's job agent may not be registered yet ("No available agent").
        var resent = false
        let (response, _) = try await resend(
            every: .milliseconds(500), within: .seconds(30),
            while: { [500, 503].contains($0.status) && RaySays.noJobAgent($0.text) }
        ) {
            do {
                return try await send(.POST, "/api/jobs/", body: body)
            } catch let error as ClusterError where error.code == .unreachable && !resent {
                // The POST may have reached Ray and only its answer been lost: send it once more with the same id.
                logger.info("POST /api/jobs/ for '\(id)' got no answer (\(error.message)); sending it again")
                resent = true
                return try await send(.POST, "/api/jobs/", body: body)
            }
        }
        switch response.status {
        case 200:
            struct Answer: Decodable { var submission_id: String?; var job_id: String? }
            let answer = try decode(Answer.self, from: response, what: "POST /api/jobs/")
            guard let id = answer.submission_id ?? answer.job_id else {
                throw ClusterError.invalidResponse("POST /api/jobs/", body: response.text, underlying: nil)
            }
            return JobSubmission(submissionID: id, workingDirectory: upload)
        case 400:
            throw JobError(
                .rejected, "Ray refused the job: \(RayMessage.extract(from: response.text))",
                remedy: "Check the job's options against Ray \(info.rayVersion).", responseBody: response.text)
        case 500 where RaySays.jobExists(response.text):
            if resent, (try? await job(id))?.entrypoint == spec.entrypoint {
                return JobSubmission(submissionID: id, workingDirectory: upload)
            }
            throw JobError(
                .alreadyExists, "A job with the id '\(id)' already exists",
                remedy: "Choose another --id, or delete the old job with 'raylan job delete \(id)'.",
                responseBody: response.text)
        default:
            throw ClusterError.server("Submitting the job", status: response.status, body: response.text)
        }
    }

    /// The JSON body of `POST /api/jobs/`; nil fields are left out and newer fields gated on `version`.
    static func submitBody(_ spec: JobSpec, workingDirectoryURI: String?, version: RayVersion) -> [String: Any] {
        var body: [String: Any] = ["entrypoint": spec.entrypoint]
        if let id = spec.submissionID { body["submission_id"] = id }
        var runtimeEnv: [String: Any] = [:]
        if let workingDirectoryURI { runtimeEnv["working_dir"] = workingDirectoryURI }
        if !spec.environment.isEmpty { runtimeEnv["env_vars"] = spec.environment }
        if !spec.pipPackages.isEmpty { runtimeEnv["pip"] = spec.pipPackages }
        if !runtimeEnv.isEmpty { body["runtime_env"] = runtimeEnv }
        if !spec.metadata.isEmpty { body["metadata"] = spec.metadata }
        if let cpus = spec.resources.cpus { body["entrypoint_num_cpus"] = cpus }
        if let gpus = spec.resources.gpus { body["entrypoint_num_gpus"] = gpus }
        if let memory = spec.resources.memoryBytes, version.supportsEntrypointMemory {
            body["entrypoint_memory"] = memory
        }
        if !spec.resources.custom.isEmpty { body["entrypoint_resources"] = spec.resources.custom }
        return body
    }

    /// Every job the cluster knows, submitted ones and plain drivers, oldest first.
    public func jobs() async throws -> [JobInfo] {
        let jobs: [JobInfo] = try await getJSON("/api/jobs/", what: "GET /api/jobs/")
        return jobs.sorted { ($0.startTime ?? 0) < ($1.startTime ?? 0) }
    }

    /// One job.
    /// - Throws: ``JobError`` (`notFound`) for an unknown id.
    public func job(_ id: String) async throws -> JobInfo {
        try await jobRequest(.GET, id, what: "Reading job '\(id)'", as: JobInfo.self)
    }

    /// Asks Ray to stop a job. Returns false when it had already finished.
    ///
    /// - Note: Ray answers true while the job's supervisor actor is alive, and it may still be exiting just after
    ///   the job's status reads STOPPED or another terminal state (seen on Ray 2.60 on a busy machine); once it has
    ///   exited, false.
    /// - Throws: ``JobError`` (`notFound`).
    @discardableResult
    public func stopJob(_ id: String) async throws -> Bool {
        struct Answer: Decodable { var stopped: Bool }
        return try await jobRequest(.POST, id, "/stop", what: "Stopping job '\(id)'", as: Answer.self).stopped
    }

    /// Deletes a finished job's record and logs, and returns once the record stays gone.
    ///
    /// Ray's job supervisor may still be exiting for a few seconds after its job ended, and then writes the
    /// job's record again after a delete (seen on Ray 2.60, also for a job that succeeded): so a deleted job is
    /// looked up again every half second, deleted once more when it is back, and the call returns once it
    /// has been gone for `settle` (at most 10 s more).
    /// - Throws: ``JobError`` (`notFound`, `notTerminal` while it runs).
    @discardableResult
    public func deleteJob(_ id: String, settle: Duration = .seconds(2)) async throws -> Bool {
        struct Answer: Decodable { var deleted: Bool }
        func delete() async throws -> Bool {
            let answer = try await jobRequest(.DELETE, id, what: "Deleting job '\(id)'", as: Answer.self) {
                response in
                if [400, 500].contains(response.status) && RaySays.jobNotTerminal(response.text) {
                    throw JobError(
                        .notTerminal, "Job '\(id)' is still running and cannot be deleted",
                        remedy: "Stop it first with 'raylan job stop \(id)'.", responseBody: response.text)
                }
            }
            return answer.deleted
        }
        guard try await delete() else { return false }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: settle + .seconds(10))
        var goneSince = clock.now
        while clock.now - goneSince < settle && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            do {
                _ = try await job(id)
                _ = try? await delete()  // written again by its exiting supervisor
                goneSince = clock.now
            } catch let error as JobError where error.code == .notFound {
                continue
            } catch {
                break  // the delete itself was answered; a lookup that fails otherwise ends the wait
            }
        }
        return true
    }

    /// The job's whole driver log so far.
    /// - Throws: ``JobError`` (`notFound`).
    public func logs(of id: String) async throws -> String {
        struct Answer: Decodable { var logs: String }
        return try await jobRequest(.GET, id, "/logs", what: "Reading the log of job '\(id)'", as: Answer.self).logs
    }

    /// One request about job `id`: a 200 answer decoded, 404 as ``JobError`` `notFound`, anything else
    /// first to `otherStatus` (which may throw a more precise error), then as a server error.
    private func jobRequest<T: Decodable>(
        _ method: HTTPMethod, _ id: String, _ suffix: String = "", what: String, as type: T.Type,
        otherStatus: (Response) throws -> Void = { _ in }
    ) async throws -> T {
        let path = "/api/jobs/\(Self.escape(id))\(suffix)"
        let response = try await send(method, path)
        switch response.status {
        case 200: return try decode(T.self, from: response, what: "\(method) \(path)")
        case 404: throw JobError.notFound(id, at: address)
        default:
            try otherStatus(response)
            throw ClusterError.server(what, status: response.status, body: response.text)
        }
    }

    /// The job's log as lines; with `follow`, new lines arrive until the job finishes.
    ///
    /// - Parameters:
    ///   - follow: keep reading until the job reaches a terminal state. Default false.
    ///   - pollInterval: how often to look for new lines while following. Default 0.5 s.
    public func logLines(of id: String, follow: Bool = false, pollInterval: Duration = .milliseconds(500))
        -> JobLogLines
    {
        JobLogLines(cluster: self, id: id, follow: follow, pollInterval: pollInterval)
    }

    /// Waits until the job is STOPPED, SUCCEEDED or FAILED and returns its final record.
    ///
    /// - Parameters:
    ///   - timeout: give up after this long; nil waits forever. Default nil.
    ///   - pollInterval: time between status reads. Default 0.5 s.
    /// - Throws: ``JobError`` (`timedOut`, `notFound`), `CancellationError`.
    public func waitForCompletion(
        of id: String, timeout: Duration? = nil, pollInterval: Duration = .milliseconds(500)
    ) async throws -> JobInfo {
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            let info = try await job(id)
            if info.status.isTerminal { return info }
            if let timeout, clock.now - start >= timeout {
                throw JobError(
                    .timedOut, "Job '\(id)' is still \(info.status) after \(timeout)",
                    remedy: "Wait longer, or look at it with 'raylan job status \(id)'.")
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    static func escape(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
            ?? id
    }
}
