import Foundation

/// A job as Ray's Jobs API describes it (`JobDetails`).
public struct JobInfo: Sendable, Hashable, Codable {
    /// Where the driver runs.
    public struct Driver: Sendable, Hashable, Codable {
        public var id: String?
        public var nodeIPAddress: String?
        public var pid: String?

        enum CodingKeys: String, CodingKey {
            case id
            case nodeIPAddress = "node_ip_address"
            case pid
        }
    }

    /// `SUBMISSION` for jobs submitted through the Jobs API, `DRIVER` for scripts that called ray.init().
    public var type: String?
    /// Ray's job id (e.g. `02000000`); nil until the driver starts.
    public var jobID: String?
    /// The submission id (`raysubmit_…` or your own).
    public var submissionID: String?
    public var status: JobStatus
    public var entrypoint: String?
    /// Ray's message: why it failed, or a progress note.
    public var message: String?
    /// Ray 2.60's failure class (e.g. `JOB_ENTRYPOINT_COMMAND_ERROR`); nil on older Ray.
    public var errorType: String?
    /// Unix milliseconds.
    public var startTime: Int?
    /// Unix milliseconds.
    public var endTime: Int?
    public var metadata: [String: String]?
    public var runtimeEnv: JSONValue?
    public var driverInfo: Driver?
    public var driverExitCode: Int?

    /// The id to use with the Jobs API: the submission id, else the job id.
    public var id: String { submissionID ?? jobID ?? "?" }

    enum CodingKeys: String, CodingKey {
        case type
        case jobID = "job_id"
        case submissionID = "submission_id"
        case status, entrypoint, message
        case errorType = "error_type"
        case startTime = "start_time"
        case endTime = "end_time"
        case metadata
        case runtimeEnv = "runtime_env"
        case driverInfo = "driver_info"
        case driverExitCode = "driver_exit_code"
    }
}
